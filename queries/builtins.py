"""The saved queries every organization starts with (the playbook's weekly four)."""

BUILTIN_QUERIES = (
    {
        "name": "Production failures",
        "description": "Failed calls in production over the last 7 days, by day and action.",
        "query": {"range": "last_7_days", "filters": {"environment": ["production"], "status": ["error"]},
                  "group_by": ["day", "action"], "metrics": ["count", "error_rate"]},
    },
    {
        "name": "Provider spend by project",
        "description": "Cost, charge and margin per project and provider over the last 30 days.",
        "query": {"range": "last_30_days", "group_by": ["project", "provider"],
                  "metrics": ["cost", "charge", "margin", "margin_pct"], "order_by": "-cost"},
    },
    {
        "name": "Customer usage trends",
        "description": "Weekly usage per customer over the last 30 days, top customers by cost first.",
        "query": {"range": "last_30_days", "group_by": ["week", "user"],
                  "metrics": ["count", "cost", "charge", "margin"], "order_by": "-cost"},
    },
    {
        "name": "High-latency paths",
        "description": "Latency per application, action and model over the last 7 days, slowest p95 first.",
        "query": {"range": "last_7_days", "group_by": ["application", "action", "model"],
                  "metrics": ["count", "latency_p50", "latency_p95"], "order_by": "-latency_p95"},
    },
)
