import copy
import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.taxonomy import (DEFAULT_TAXONOMY, FIELD_NAMES, closest, compile_taxonomy, default_taxonomy,
                             suggest_snake_case)

TAXONOMY = compile_taxonomy(DEFAULT_TAXONOMY)
CLEAN = {
    "environment": "production", "provider": "openai", "application": "assistant", "action": "completion",
    "userId": "cus_42", "charge": Decimal("0.01"), "traces": ["tr_1"], "tags": ["premium", "tier:gold"],
    "metadata": {"model": "gpt-4o-mini", "latencyMs": 120, "inputTokens": 500, "outputTokens": 80,
                 "status": "success", "errorType": "none", "region": "eu"},
}
ENVIRONMENTS = "(allowed: development, production, staging)"


def check(taxonomy=TAXONOMY, **changes):
    event = {**CLEAN, **changes}
    return taxonomy.check({k: v for k, v in event.items() if v is not ...})


def with_rules(**fields):
    spec = default_taxonomy()
    for name, rule in fields.items():
        spec["fields"][name].update(rule)
    return compile_taxonomy(spec)


def with_metadata(**settings_):
    spec = default_taxonomy()
    spec["metadata"].update(settings_)
    return compile_taxonomy(spec)


def test_default_spec_round_trips_as_json():
    assert TAXONOMY.to_json() == DEFAULT_TAXONOMY
    assert json.loads(json.dumps(TAXONOMY.to_json())) == DEFAULT_TAXONOMY
    mine = default_taxonomy()
    mine["fields"]["environment"]["values"].clear()
    assert DEFAULT_TAXONOMY["fields"]["environment"]["values"]


def test_a_clean_event_has_nothing_to_say():
    verdict = check()
    assert (verdict.values, verdict.errors, verdict.warnings, verdict.flags) == ({}, {}, {}, ())
    assert verdict.ok


@pytest.mark.parametrize("given, canonical", [
    ("prod", "production"), ("PROD", "production"), ("Live", "production"), ("prd", "production"),
    ("Production", "production"), ("stg", "staging"), ("Stage", "staging"), ("dev", "development"),
    ("LOCAL", "development"),
])
def test_environment_aliases_are_rewritten_case_insensitively(given, canonical):
    verdict = check(environment=given)
    assert verdict.ok and verdict.values == {"environment": canonical}
    assert verdict.warnings == {"environment": [f"'{given}' normalized to '{canonical}'"]}
    assert verdict.flags == ()  # a rewrite is not a data-quality problem


def test_unknown_environment_is_rejected_with_the_allowed_values():
    verdict = check(environment="prod-eu")
    assert verdict.errors == {"environment": [f"'prod-eu' is not an allowed environment {ENVIRONMENTS}"]}
    assert verdict.flags == ("environment.unknown",) and not verdict.values and not verdict.ok


@pytest.mark.parametrize("missing", [..., None, ""])
def test_missing_environment_is_rejected(missing):
    verdict = check(environment=missing)
    assert verdict.errors == {"environment": [f"missing: environment is required {ENVIRONMENTS}"]}
    assert verdict.flags == ("environment.missing",)


def test_missing_action_is_rejected():
    verdict = check(action=None)
    assert verdict.errors == {"action": ["missing: action is required (lower snake_case words, 2-64 chars)"]}
    assert verdict.flags == ("action.missing",)


@pytest.mark.parametrize("name", ["completion", "invoice_previewed", "online_search", "download_report",
                                  "handler_registered", "done", "gpt4_call", "on"])
def test_snake_case_actions_pass(name):
    assert check(action=name).ok


@pytest.mark.parametrize("name, suggestion", [
    ("handleInvoicePreview()", "invoice_preview"), ("onExportStarted", "export_started"),
    ("chat.completion", "chat_completion"), ("CreateEmbedding", "create_embedding"),
    ("getHTTPResponse", "get_http_response"), ("do_embedding", "embedding"),
    ("on_export_started", "export_started"), ("handle_invoice", "invoice"), ("Completion", "completion"),
])
def test_code_like_actions_are_rejected_with_a_suggestion(name, suggestion):
    verdict = check(action=name)
    assert verdict.errors == {"action": [
        f"'{name}' reads like code: action names are lower snake_case words, 2-64 chars (try '{suggestion}')"]}
    assert verdict.flags == ("action.convention",)


@pytest.mark.parametrize("name, message", [
    ("invoice previewed", "'invoice previewed' is not a valid action name: action names are lower snake_case "
                          "words, 2-64 chars (try 'invoice_previewed')"),
    ("x", "'x' is not a valid action name: action names are lower snake_case words, 2-64 chars"),
    ("a" * 65, f"'{'a' * 65}' is not a valid action name: action names are lower snake_case words, 2-64 chars "
               f"(try '{'a' * 64}')"),
])
def test_other_bad_action_names_say_why(name, message):
    assert check(action=name).errors == {"action": [message]}


@pytest.mark.parametrize("name, expected", [
    ("handleInvoicePreview()", "invoice_preview"), ("onExportStarted", "export_started"),
    ("chat.completion", "chat_completion"), ("CreateEmbedding", "create_embedding"), ("do_embedding", "embedding"),
    ("getHTTPResponse", "get_http_response"), ("online_search", "online_search"), ("OnlineSearch", "online_search"),
    ("on-click", "click"), ("handle", "handle"), ("handle_", "handle"),
    ("api.v2.runTool(args, opts)", "api_v2_run_tool"),
    ("résumé parse", "resume_parse"), ("doNotDisturb", "not_disturb"), ("Done", "done"),
])
def test_suggest_snake_case(name, expected):
    assert suggest_snake_case(name) == expected


@pytest.mark.parametrize("given, canonical", [
    ("azure_openai", "azure"), ("Azure-OpenAI", "azure"), ("gemini", "google"), ("Bedrock", "aws"),
    ("claude", "anthropic"), ("OpenAI", "openai"), ("grok", "xai"),
])
def test_provider_aliases(given, canonical):
    verdict = check(provider=given)
    assert verdict.values == {"provider": canonical}
    assert verdict.warnings == {"provider": [f"'{given}' normalized to '{canonical}'"]}


def test_unknown_provider_is_stored_and_flagged():
    verdict = check(provider="acme-llm")
    assert verdict.ok and not verdict.values and verdict.flags == ("provider.unknown",)
    [message] = verdict.warnings["provider"]
    assert message.startswith("'acme-llm' is not a known provider (known: anthropic, aws, azure, ")


@pytest.mark.parametrize("field, missing, message", [
    ("provider", None, "missing: the taxonomy recommends a provider"),
    ("application", ..., "missing: the taxonomy recommends an application"),
    ("userId", None, "missing: the taxonomy recommends a user id (userId)"),
    ("traces", [], "missing: the taxonomy recommends trace ids"),
    ("traces", ..., "missing: the taxonomy recommends trace ids"),
    ("charge", None, "missing: margin cannot be computed without charge"),
    ("charge", ..., "missing: margin cannot be computed without charge"),
])
def test_recommended_fields_are_flagged_when_missing(field, missing, message):
    verdict = check(**{field: missing})
    assert verdict.ok and verdict.warnings == {field: [message]} and verdict.flags == (f"{field}.missing",)


def test_a_zero_charge_is_a_charge():
    assert check(charge=Decimal("0")).flags == ()


def test_tags_are_optional_and_flagged_once_when_not_slugs():
    assert check(tags=...).flags == () and check(tags=[]).flags == ()
    assert check(tags=["eu-west-1", "tier:gold", "a_b", "x" * 32]).flags == ()
    verdict = check(tags=["Premium Users", "ok", "Premium Users", "y" * 33])
    assert verdict.ok and verdict.flags == ("tags.convention",)
    assert verdict.warnings == {"tags": [
        "'Premium Users' is not a valid tag: tags are lower-case slugs [a-z0-9][a-z0-9_:-]*, up to 32 chars "
        "(try 'premium_users')",
        f"'{'y' * 33}' is not a valid tag: tags are lower-case slugs [a-z0-9][a-z0-9_:-]*, up to 32 chars "
        f"(try '{'y' * 32}')"]}


@pytest.mark.parametrize("alias, key", [
    ("latency_ms", "latencyMs"), ("latency", "latencyMs"), ("prompt_tokens", "inputTokens"),
    ("input_tokens", "inputTokens"), ("completion_tokens", "outputTokens"), ("error_type", "errorType"),
])
def test_metadata_aliases_are_rewritten_to_their_key(alias, key):
    verdict = check(metadata={"model": "m", alias: "Timeout" if key == "errorType" else 7})
    assert verdict.ok and list(verdict.values["metadata"]) == ["model", key]
    assert verdict.warnings == {f"metadata.{key}": [f"'{alias}' normalized to '{key}'"]} and verdict.flags == ()


def test_an_alias_next_to_its_key_is_dropped_in_favour_of_the_key():
    verdict = check(metadata={"latency_ms": 5, "latencyMs": 7, "latency": 9})
    assert verdict.values == {"metadata": {"latencyMs": 7}}
    assert verdict.warnings == {"metadata.latencyMs": ["both 'latency_ms' and 'latencyMs' given: kept 'latencyMs'",
                                                       "both 'latency' and 'latencyMs' given: kept 'latencyMs'"]}
    verdict = check(metadata={"latency_ms": 5, "latency": 9})
    assert verdict.values == {"metadata": {"latencyMs": 5}}
    assert "both 'latency' and 'latency_ms' given: kept 'latency_ms'" in verdict.warnings["metadata.latencyMs"]


@pytest.mark.parametrize("key, value, message, code", [
    ("latencyMs", "12", "latencyMs must be an integer (got the string '12')", "metadata.type"),
    ("latencyMs", True, "latencyMs must be an integer (got true)", "metadata.type"),
    ("inputTokens", 684.0, "inputTokens must be an integer (got 684.0: send 684 without a decimal point)",
     "metadata.type"),
    ("inputTokens", Decimal("684.0"), "inputTokens must be an integer (got 684.0: send 684 without a decimal point)",
     "metadata.type"),
    ("outputTokens", 1.5, "outputTokens must be an integer (got 1.5)", "metadata.type"),
    ("outputTokens", None, "outputTokens must be an integer (got null)", "metadata.type"),
    ("model", 3, "model must be a string (got 3)", "metadata.type"),
    ("model", {"name": "x"}, "model must be a string (got an object)", "metadata.type"),
    ("latencyMs", -1, "latencyMs must be at least 0 (got -1)", "metadata.range"),
    ("status", "ok", "'ok' is not an allowed status (allowed: error, success)", "metadata.choice"),
])
def test_registered_metadata_values_are_checked(key, value, message, code):
    verdict = check(metadata={key: value})
    assert verdict.errors == {f"metadata.{key}": [message]} and verdict.flags == (code,)
    flagged = with_metadata(enforcement="flag").check({**CLEAN, "metadata": {key: value}})
    assert flagged.ok and flagged.warnings == {f"metadata.{key}": [message]} and flagged.flags == (code,)


def test_metadata_choices_match_case_insensitively():
    verdict = check(metadata={"status": "ERROR"})
    assert verdict.values == {"metadata": {"status": "error"}}
    assert verdict.warnings == {"metadata.status": ["'ERROR' normalized to 'error'"]}


def test_number_keys_take_decimals_but_not_nan():
    spec = default_taxonomy()
    spec["metadata"]["keys"].append({"key": "temperature", "type": "number", "minimum": 0})
    taxonomy = compile_taxonomy(spec)
    for value in (0, 1, 0.7, Decimal("0.7")):
        assert taxonomy.check({**CLEAN, "metadata": {"temperature": value}}).ok
    for value in (Decimal("NaN"), float("inf"), True, -0.1):
        assert not taxonomy.check({**CLEAN, "metadata": {"temperature": value}}).ok


@pytest.mark.parametrize("key, similar", [
    ("latencyMS", "latencyMs"), ("latency-ms", "latencyMs"), ("promptTokens", "inputTokens"),
    ("outputToken", "outputTokens"), ("Model", "model"), ("staus", "status"),
])
def test_unknown_keys_that_resemble_registered_ones_are_flagged(key, similar):
    verdict = check(metadata={key: 1})
    assert verdict.ok and verdict.warnings == {f"metadata.{key}": [f"unknown key '{key}' looks like '{similar}'"]}
    assert verdict.flags == ("metadata.unknown_key",) and not verdict.values
    assert check(metadata={key: 1}).warnings == verdict.warnings  # the memoized path says the same


def test_unknown_key_policies():
    assert check(metadata={"region": "eu", "feature": "x"}).flags == ()
    assert with_metadata(unknown_keys="allow").check({**CLEAN, "metadata": {"latencyMS": 1}}).flags == ()
    flagged = with_metadata(unknown_keys="flag").check({**CLEAN, "metadata": {"region": "eu", "Model": "x"}})
    assert flagged.ok and flagged.warnings == {
        "metadata.region": ["unknown key 'region' is not in the taxonomy"],
        "metadata.Model": ["unknown key 'Model' is not in the taxonomy (did you mean 'model'?)"]}
    rejected = with_metadata(unknown_keys="reject").check({**CLEAN, "metadata": {"region": "eu"}})
    assert rejected.errors == {"metadata.region": ["unknown key 'region' is not in the taxonomy"]}
    assert rejected.flags == ("metadata.unknown_key",)


def test_closest():
    assert closest("latencyMS", ["model", "latencyMs"]) == "latencyMs"
    assert closest("input-tokens", ["inputTokens"]) == "inputTokens"
    assert closest("prodution", ["staging", "production"]) == "production"
    assert closest("region", ["model", "status", "latencyMs"]) is None
    assert closest("", ["model"]) is None and closest("model", []) is None


def test_check_does_not_mutate_the_event():
    event = {**CLEAN, "environment": "PROD", "tags": ["Bad Tag"],
             "metadata": {"latency_ms": 3, "latencyMs": 4, "status": "Success", "prompt_tokens": 1}}
    before = copy.deepcopy(event)
    verdict = TAXONOMY.check(event)
    assert event == before and verdict.values["metadata"] == {"latencyMs": 4, "status": "success", "inputTokens": 1}


def test_custom_rules():
    relaxed = with_rules(environment={"enforcement": "flag"}, application={
        "presence": "required", "enforcement": "reject",
        "values": [{"value": "assistant", "aliases": ["bot"]}, "billing"]})
    verdict = relaxed.check({**CLEAN, "environment": "qa", "application": "Bot"})
    assert verdict.ok and verdict.values == {"application": "assistant"}
    assert verdict.warnings["environment"] == [
        "'qa' is not a known environment (known: development, production, staging)"]
    assert relaxed.check({**CLEAN, "application": "crm"}).errors == {
        "application": ["'crm' is not an allowed application (allowed: assistant, billing)"]}
    strict = with_rules(charge={"presence": "required", "enforcement": "reject"}, tags={"presence": "required"})
    verdict = strict.check({**CLEAN, "charge": None, "tags": []})
    assert verdict.errors == {"charge": ["missing: charge is required (margin cannot be computed without it)"]}
    assert verdict.warnings == {"tags": ["missing: tags is required (lower-case slugs [a-z0-9][a-z0-9_:-]*, "
                                         "up to 32 chars)"]}
    # "recommended" never rejects, whatever the enforcement.
    assert with_rules(userId={"enforcement": "reject"}).check({**CLEAN, "userId": None}).ok
    assert compile_taxonomy({}).check({}).flags == ()


def _broken(path, value):
    spec = default_taxonomy()
    *parents, last = path
    target = spec
    for part in parents:
        target = target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return spec


@pytest.mark.parametrize("spec, fragment", [
    ([], "the taxonomy must be an object"),
    ({"field": {}}, "unknown setting 'field'"),
    ({"fields": {"env": {}}}, "unknown field 'env'"),
    (_broken(["fields", "environment", "presence"], "mandatory"), "fields.environment.presence is 'mandatory'"),
    (_broken(["fields", "provider", "enforcement"], "warn"), "fields.provider.enforcement"),
    (_broken(["fields", "action", "convention"], "camelCase"), "fields.action.convention"),
    (_broken(["fields", "action", "enforcment"], "flag"), "unknown setting 'enforcment'"),
    (_broken(["fields", "tags", "values"], "premium"), "fields.tags.values must be a list"),
    (_broken(["fields", "charge", "values"], ["free"]), "fields.charge cannot have values"),
    (_broken(["fields", "environment", "values", 0, "aliases"], ["prod", "STG"]),
     "'stg' is listed more than once, ignoring case (already used by 'production')"),
    (_broken(["fields", "environment", "values", 0, "value"], ""), "must be a non-empty string"),
    (_broken(["fields", "environment", "values", 0, "value"], KeyError), "needs 'value'"),
    (_broken(["fields", "action", "values"], ["Chat"]), "breaks the field's own snake_case convention"),
    (_broken(["metadata", "unknown_keys"], "ignore"), "metadata.unknown_keys is 'ignore'"),
    (_broken(["metadata", "keys", 0, "type"], "str"), "metadata.keys[0].type is 'str'"),
    (_broken(["metadata", "keys", 0, "minimum"], 0), "only integer and number keys take one"),
    (_broken(["metadata", "keys", 1, "minimum"], "0"), "metadata.keys[1].minimum must be a finite number"),
    (_broken(["metadata", "keys", 4, "choices"], []), "must be a non-empty list"),
    (_broken(["metadata", "keys", 4, "choices"], ["ok", 1]), "1 is not of type string"),
    (_broken(["metadata", "keys", 0, "aliases"], ["latency"]), "'latency' is listed more than once"),
    (_broken(["metadata", "keys", 0, "key"], "status"), "'status' is listed more than once"),
])
def test_bad_specs_are_refused_with_a_sentence(spec, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        compile_taxonomy(spec)


# --- properties -----------------------------------------------------------------

_text = st.text(max_size=70)
_names = st.one_of(_text, st.sampled_from(["prod", "Production", "handleX()", "on_x", "AZURE_OPENAI", "Bad Tag"]))
_keys = st.one_of(_text, st.sampled_from(["latencyMs", "latency_ms", "latency", "latencyMS", "status", "model",
                                          "prompt_tokens", "inputTokens", "errorType"]))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False) | _text | st.sampled_from(["success", "ERROR"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=8)
_events = st.fixed_dictionaries({}, optional={
    **{name: st.one_of(st.none(), _names) for name in ("environment", "provider", "application", "action", "userId")},
    "charge": st.one_of(st.none(), st.decimals(min_value=0, allow_nan=False, allow_infinity=False)),
    "traces": st.lists(_text, max_size=4), "tags": st.lists(_names, max_size=4),
    "metadata": st.dictionaries(_keys, _json, max_size=6),
})
_CODE = re.compile(r"(%s)\.[a-z_]+" % "|".join(FIELD_NAMES + ("metadata",)))


@settings(max_examples=300, deadline=None)
@given(_events)
def test_check_never_raises_and_its_verdict_is_consistent(event):
    before = copy.deepcopy(event)
    verdict = TAXONOMY.check(event)
    assert event == before
    assert all(_CODE.fullmatch(code) for code in verdict.flags) and len(set(verdict.flags)) == len(verdict.flags)
    for messages in (*verdict.errors.values(), *verdict.warnings.values()):
        assert messages and all(isinstance(m, str) and m for m in messages)
    error_fields = {field.partition(".")[0] for field in verdict.errors}
    for field in verdict.values:
        # A rewrite always says so, and never hides an error.
        assert field not in error_fields
        assert any(w == field or w.startswith(field + ".") for w in verdict.warnings)
    assert repr(TAXONOMY.check(event)) == repr(verdict)  # memoized verdicts agree with fresh ones
    # Normalizing is idempotent: the rewritten event needs no further rewrite.
    again = TAXONOMY.check({**event, **verdict.values})
    assert again.values == {} and again.errors == verdict.errors


@given(st.text(max_size=80))
def test_a_valid_snake_case_suggestion_is_accepted(name):
    suggestion = suggest_snake_case(name)
    if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", suggestion) and len(suggestion) >= 2:
        assert check(action=suggestion).ok and suggest_snake_case(suggestion) == suggestion
