"""Idempotency digests are pinned: a resend of an event stored by an earlier release must still be a duplicate.

The digest of an event's content is stored with its id (events_eventkey.content_hash) and
compared with every later send of that id. If the way it is computed changed, every
retry of an already-stored event would become an id_conflict, so the bytes are pinned
here for events that exercise its rules: amounts spelled differently, nulls, the
project, aliases the taxonomy rewrites (the digest is of what was sent), escapes and
non-ASCII text, nested metadata, amounts at the limits of numeric(38, 18).
"""
from events.models import EventKey
from tests.events.test_ingest_idempotency import counts, send

# (body, content_hash hex)
PINNED = [
    ('{"id":"evt_pin_1","timestamp":"2026-11-30T10:00:00.123Z","cost":0.0004125000,"environment":"prod",'
     '"provider":"openai","action":"chat_completion","charge":0.000825,"application":"assistant",'
     '"userId":"user_00042","traces":["0af7651916cd43dd8448eb211c80319c"],"tags":["premium","eu"],'
     '"metadata":{"model":"gpt-4o-mini","latencyMs":812,"inputTokens":1200,"outputTokens":150,"status":"success",'
     '"region":"eu-west","temperature":0.7,"prompt":{"template":"summarize_v2","version":3}}}',
     "01bdd5e0c68887715f2ca2150862f1f2"),
    ('{"id":"evt_pin_2","project":"assistant-api","timestamp":"2026-11-30T11:00:00+01:00","cost":" 142.000 ",'
     '"charge":null,"currency":null,"tags":null,"environment":"production","action":"completion"}',
     "90bbf3852476fbac97bebbb386d98fc7"),
    ('{"id":"evt_pin_3","timestamp":"2026-11-30T12:00:00","cost":1e-5,"charge":0,"currency":"USD",'
     '"environment":"Production","provider":"claude","action":"invoice_previewed",'
     '"userId":"\\u30e6\\u30fc\\u30b6\\u30fc",'
     '"metadata":{"model":"claude-3-5-haiku","prompt_tokens":10,"completion_tokens":5,"latency_ms":90}}',
     "f48760d4409168a7b90e89aa69ce91db"),
    ('{"id":"evt_pin_4","timestamp":"2026-11-30T13:00:00Z","cost":"0.5","charge":"2.50","environment":"staging",'
     '"action":"completion","traces":[],"metadata":{"status":"error","errorType":"RateLimitError",'
     '"note":"tab\\there \\"quoted\\" back\\\\slash","nested":[1,{"b":null,"a":true}]}}',
     "68334fb2932f2d491e6a957f056daca1"),
    ('{"id":"evt_pin_5","timestamp":"2026-11-30T14:00:00Z","cost":12345678901234567890.123456789012345678,'
     '"charge":"0.000000000000000001","environment":"dev","action":"completion","metadata":{}}',
     "18b0db2b5990f78b4f75ade3db398a9a"),
]


def test_the_digests_of_stored_events_do_not_change(api_as, ingest_key, organization):
    client = api_as(ingest_key)
    body = '{"events":[' + ",".join(text for text, _ in PINNED) + "]}"
    response = send(client, body)
    assert (response.status_code, counts(response)) == (200, (len(PINNED), 0, 0)), response.json()
    keys = EventKey.objects.filter(organization=organization)
    stored = {key.client_id: bytes(key.content_hash).hex() for key in keys}
    assert [stored[f"evt_pin_{n}"] for n in range(1, len(PINNED) + 1)] == [digest for _, digest in PINNED]
    assert counts(send(client, body)) == (0, len(PINNED), 0)
