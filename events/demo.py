"""Realistic demo events, generated inside PostgreSQL: the vocabulary of real AI
traffic (providers and models with list prices, actions, applications, tags) and one
INSERT ... SELECT that writes events exactly as ingestion stores them (reporting
amounts, promoted metadata, flags).

Used by `manage.py seed_demo` and by the benchmarks (bench/dataset.py, bench/eventgen.py).
Actions belong to one application and project and call one of two models; cost comes
from token counts at list prices; customers belong to one project, a few heavy
(power law), and staging/development traffic comes from a handful of test users;
environments 80/12/8 %; 3 % errors; log-normal latency per model; 10 % of events
without a charge and 2 % with a charge of 0; 5 % without traces; tags on half.
"""

# provider -> [(model, USD per 1M input tokens, USD per 1M output tokens)]
MODELS = {
    "openai": [("gpt-4o", "2.50", "10.00"), ("gpt-4o-mini", "0.15", "0.60"), ("gpt-4.1", "2.00", "8.00"),
               ("gpt-4.1-mini", "0.40", "1.60"), ("gpt-4.1-nano", "0.10", "0.40"), ("o3-mini", "1.10", "4.40"),
               ("text-embedding-3-small", "0.02", "0")],
    "anthropic": [("claude-sonnet-4-20250514", "3.00", "15.00"), ("claude-3-5-haiku-20241022", "0.80", "4.00"),
                  ("claude-opus-4-20250514", "15.00", "75.00"), ("claude-3-7-sonnet-20250219", "3.00", "15.00")],
    "google": [("gemini-2.0-flash", "0.10", "0.40"), ("gemini-1.5-pro", "1.25", "5.00"),
               ("gemini-2.5-pro", "1.25", "10.00"), ("gemini-2.5-flash", "0.30", "2.50")],
    "azure": [("gpt-4o-2024-08-06", "2.50", "10.00"), ("gpt-35-turbo", "0.50", "1.50"),
              ("gpt-4o-mini-2024-07-18", "0.15", "0.60")],
    "aws": [("anthropic.claude-3-haiku-20240307-v1:0", "0.25", "1.25"),
            ("meta.llama3-1-70b-instruct-v1:0", "0.72", "0.72"), ("amazon.titan-text-express-v1", "0.20", "0.60"),
            ("amazon.nova-lite-v1:0", "0.06", "0.24")],
    "mistral": [("mistral-large-latest", "2.00", "6.00"), ("mistral-small-latest", "0.10", "0.30"),
                ("codestral-latest", "0.30", "0.90")],
    "cohere": [("command-r-plus", "2.50", "10.00"), ("command-r", "0.15", "0.60"), ("embed-english-v3.0", "0.10", "0")],
    "groq": [("llama-3.3-70b-versatile", "0.59", "0.79"), ("llama-3.1-8b-instant", "0.05", "0.08")],
}
PROVIDER_WEIGHTS = {"openai": 40, "anthropic": 25, "google": 12, "azure": 8, "aws": 6, "mistral": 4, "cohere": 3,
                    "groq": 2}
# What some SDK wrappers send instead of the canonical name: flagged and normalized.
PROVIDER_ALIASES = {"openai": ["OpenAI", "open-ai"], "anthropic": ["claude", "Anthropic"], "google": ["vertex", "gemini"],
                    "azure": ["azure_openai"], "aws": ["bedrock"], "mistral": ["mistralai"], "cohere": ["Cohere"],
                    "groq": ["Groq"]}
ENVIRONMENTS = [("production", 80), ("staging", 12), ("development", 8)]
ENVIRONMENT_ALIASES = {"production": ["prod", "prd", "Production", "live"], "staging": ["stg", "stage"],
                       "development": ["dev", "local"]}
ACTIONS = [
    "chat_completion", "summarize_ticket", "classify_ticket", "draft_reply", "translate_message", "search_docs",
    "embed_document", "rerank_results", "extract_invoice", "invoice_previewed", "categorize_expense",
    "generate_report", "answer_question", "moderate_content", "detect_language", "suggest_tags", "write_email",
    "code_review", "explain_code", "generate_tests", "fix_bug", "refactor_function", "generate_sql",
    "summarize_meeting", "transcribe_audio", "caption_image", "analyze_sentiment", "score_lead",
    "enrich_contact", "qualify_lead", "recommend_product", "personalize_feed", "rewrite_copy", "generate_title",
    "outline_article", "proofread_text", "plan_trip", "route_ticket", "triage_alert", "summarize_logs",
    "agent_step", "tool_call", "retrieve_context", "evaluate_answer", "guardrail_check", "onboarding_tip",
    "churn_prediction", "forecast_usage", "contract_review", "kyc_check",
]
APPLICATIONS = [("support-bot", 30), ("copilot", 20), ("search", 15), ("billing-assistant", 10),
                ("sales-agent", 10), ("analytics", 7), ("docs-assistant", 5), ("onboarding", 3)]
TAGS = ["beta", "free-tier", "pro", "enterprise", "eu", "us", "apac", "mobile", "web", "api", "batch",
        "streaming", "cache:hit", "cache:miss", "experiment:a", "experiment:b", "retry", "fallback", "internal",
        "priority:high", "priority:low", "rag", "agent", "vision", "voice"]
BAD_TAGS = ["Beta Users", "VIP", "free tier", "A/B"]  # break the tag_slug convention: flagged
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"]
ERROR_TYPES = ["rate_limit", "timeout", "context_length_exceeded", "server_error", "content_filter"]


_MODELS = [(provider, model, inp, out) for provider, models in MODELS.items()
           for model, inp, out in models]


def _sql_text_array(values) -> str:
    return "ARRAY[" + ",".join("'" + value.replace("'", "''") + "'" for value in values) + "]::text[]"


def _sql_num_array(values) -> str:
    return "ARRAY[" + ",".join(str(value) for value in values) + "]::numeric[]"


def _weighted(indexes_weights: list[tuple[int, int]]) -> str:
    """An int array where each index appears `weight` times: a uniform pick is a weighted one."""
    return "ARRAY[" + ",".join(str(index) for index, weight in indexes_weights for _ in range(weight)) + "]::int[]"


def insert_sql() -> str:
    """The statement; parameters: organization_id, project_ids (3 ids), prefix (of client ids),
    received_at, currency, first/last (the generate_series bounds), start/end (the window)."""
    models = _MODELS
    actions = ACTIONS
    applications = [name for name, _ in APPLICATIONS]
    # Action i: application i % 8, its project by application, models a and b.
    action_models_a = [(i * 7) % len(models) + 1 for i in range(len(actions))]
    action_models_b = [(i * 13 + 5) % len(models) + 1 for i in range(len(actions))]
    # A few actions carry most traffic (chat, support) and many are rare.
    weights = [max(1, 40 // (i + 1)) for i in range(len(actions))]
    action_weights = _weighted([(i + 1, weight) for i, weight in enumerate(weights)])
    total_weight = sum(weights)
    model_providers = _sql_text_array(m[0] for m in models)
    model_names = _sql_text_array(m[1] for m in models)
    input_prices = _sql_num_array(m[2] for m in models)
    output_prices = _sql_num_array(m[3] for m in models)
    tag_count = len(TAGS)
    base_latency = [300 + (i * 397) % 2700 for i in range(len(models))]
    return f"""
INSERT INTO events_event (organization_id, project_id, client_id, "timestamp", received_at, cost, charge,
    currency, cost_reporting, charge_reporting, environment, provider, application, action, user_id, tags, traces,
    metadata, model, latency_ms, input_tokens, output_tokens, status, error_type, flags)
SELECT %(organization_id)s, (%(project_ids)s::bigint[])[1 + (d.action_index - 1) %% 8 %% 3],
    'evt_' || %(prefix)s || '_' || g.n, d.ts, %(received_at)s, d.cost, d.charge, %(currency)s, d.cost, d.charge,
    d.environment, d.provider, ({_sql_text_array(applications)})[1 + (d.action_index - 1) %% 8],
    ({_sql_text_array(actions)})[d.action_index], d.user_id, d.tags, d.traces,
    jsonb_build_object('model', d.model, 'latencyMs', d.latency, 'inputTokens', d.input_tokens,
                       'outputTokens', d.output_tokens, 'status', d.status,
                       'region', ({_sql_text_array(REGIONS)})[1 + g.n %% 5]),
    d.model, d.latency, d.input_tokens, d.output_tokens, d.status,
    CASE WHEN d.status = 'error' THEN ({_sql_text_array(ERROR_TYPES)})[1 + g.n %% 5] END,
    array_remove(ARRAY[CASE WHEN d.charge IS NULL THEN 'charge.missing' END,
                       CASE WHEN cardinality(d.traces) = 0 THEN 'traces.missing' END], NULL)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g(n)
CROSS JOIN LATERAL (
    SELECT a.*,
        round((a.input_tokens * ({input_prices})[a.model_index]
             + a.output_tokens * ({output_prices})[a.model_index]) / 1000000, 18) AS cost,
        ({model_providers})[a.model_index] AS provider,
        ({model_names})[a.model_index] AS model,
        round(({_sql_num_array(base_latency)})[a.model_index]
              * exp(0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::int AS latency
    FROM (
        SELECT b.*,
            -- Customers belong to one project and use production; other environments see
            -- a handful of test users.
            CASE WHEN b.environment <> 'production' THEN 'test_user_' || g.n %% 20
                 WHEN random() < 0.03 THEN NULL
                 ELSE 'user_' || (b.action_index - 1) %% 8 %% 3 || '_' || floor(3334 * power(random(), 3))::int
            END AS user_id,
            CASE WHEN random() < 0.5 THEN ({_sql_num_array(action_models_a)})[b.action_index]
                 ELSE ({_sql_num_array(action_models_b)})[b.action_index] END::int AS model_index
        FROM (
            SELECT
                %(start)s::timestamptz + random() * (%(end)s::timestamptz - %(start)s::timestamptz) AS ts,
                ({action_weights})[1 + floor(random() * {total_weight})::int] AS action_index,
                (ARRAY['production','production','production','production','production','production',
                       'production','production','staging','development'])[1 + floor(random() * 10)::int]
                    AS environment,
                (100 + floor(4000 * power(random(), 2)))::int AS input_tokens,
                (20 + floor(800 * random()))::int AS output_tokens,
                CASE WHEN random() < 0.03 THEN 'error' ELSE 'success' END AS status,
                CASE WHEN random() < 0.5 THEN '{{}}'::varchar[]
                     ELSE ARRAY[({_sql_text_array(TAGS)})[1 + floor(random() * {tag_count})::int]]
                          ::varchar[] END AS tags,
                CASE WHEN random() < 0.05 THEN '{{}}'::varchar[] ELSE ARRAY['trc_' || g.n]::varchar[] END AS traces,
                random() AS charge_draw, random() AS markup
        ) b
    ) a
) c0
CROSS JOIN LATERAL (
    SELECT c0.*, CASE WHEN c0.charge_draw < 0.10 THEN NULL WHEN c0.charge_draw < 0.12 THEN 0
                      ELSE round(c0.cost * (1.1 + c0.markup)::numeric, 6) END AS charge
) d
"""




def demo_events_create(*, organization, project_ids: list[int], count: int, end, days: int = 90) -> int:
    """Writes `count` demo events over the `days` before `end` for `organization`'s
    three projects (ids in `project_ids`, repeated if fewer); returns `count`."""
    from datetime import timedelta

    from django.db import connection

    from events.partitions import ensure_partitions, forget_known_partitions

    start = end - timedelta(days=days)
    months, day = set(), start.date()
    while day <= end.date():
        months.add((day.year, day.month))
        day += timedelta(days=1)
    forget_known_partitions()  # a rare, large write: look at the catalog, not the process's memory
    ensure_partitions(months)
    ids = (list(project_ids) * 3)[:3]
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(), {
            "organization_id": organization.pk, "project_ids": ids, "prefix": "demo", "received_at": end,
            "currency": organization.reporting_currency, "first": 1, "last": count, "start": start, "end": end})
    return count
