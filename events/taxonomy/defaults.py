"""The taxonomy every new organization starts with (API.md, "Taxonomy")."""
from __future__ import annotations

import copy


def _v(value: str, description: str, *aliases: str) -> dict:
    return {"value": value, "description": description, "aliases": list(aliases)}


def _field(presence: str, enforcement: str, values: list | None = None, convention: str | None = None) -> dict:
    return {"presence": presence, "enforcement": enforcement, "values": values or [], "convention": convention}


def _key(key: str, type_: str, description: str, *aliases: str, minimum=None, choices=None) -> dict:
    return {"key": key, "type": type_, "description": description, "aliases": list(aliases),
            "minimum": minimum, "choices": choices}


# Written in normalized form (every setting spelled out), so
# compile_taxonomy(DEFAULT_TAXONOMY).to_json() == DEFAULT_TAXONOMY.
DEFAULT_TAXONOMY: dict = {
    "fields": {
        "environment": _field("required", "reject", [
            _v("production", "Live traffic from real customers", "prod", "prd", "live"),
            _v("staging", "Pre-release environment that mirrors production", "stage", "stg"),
            _v("development", "Local machines and shared development servers", "dev", "local"),
        ]),
        "provider": _field("recommended", "flag", [
            _v("openai", "OpenAI API", "open_ai", "open-ai"),
            _v("anthropic", "Anthropic API", "claude"),
            _v("google", "Google Gemini and Vertex AI", "gemini", "vertex", "vertex_ai", "google_ai"),
            _v("azure", "Azure OpenAI and Azure AI services", "azure_openai", "azure-openai", "azureopenai"),
            _v("aws", "Amazon Bedrock and other AWS AI services", "bedrock", "aws_bedrock", "amazon"),
            _v("mistral", "Mistral AI", "mistralai", "mistral_ai"),
            _v("cohere", "Cohere"),
            _v("groq", "Groq"),
            _v("together", "Together AI", "together_ai", "togetherai"),
            _v("fireworks", "Fireworks AI", "fireworks_ai", "fireworksai"),
            _v("deepseek", "DeepSeek"),
            _v("xai", "xAI (Grok)", "x_ai", "x.ai", "grok"),
            _v("perplexity", "Perplexity", "pplx"),
            _v("openrouter", "OpenRouter"),
            _v("replicate", "Replicate"),
            _v("huggingface", "Hugging Face inference", "hugging_face", "hf"),
            _v("ollama", "Ollama (local models)"),
            _v("self_hosted", "Models you run yourself", "self-hosted", "selfhosted", "internal"),
        ]),
        "application": _field("recommended", "flag"),
        "action": _field("required", "reject", convention="snake_case"),
        "userId": _field("recommended", "flag"),
        "charge": _field("recommended", "flag"),
        "traces": _field("recommended", "flag"),
        "tags": _field("optional", "flag", convention="tag_slug"),
    },
    "metadata": {
        "keys": [
            _key("model", "string", "Model name as the provider reports it, e.g. gpt-4o-mini"),
            _key("latencyMs", "integer", "Duration of the provider call in milliseconds",
                 "latency_ms", "latency", minimum=0),
            _key("inputTokens", "integer", "Tokens sent to the model", "input_tokens", "prompt_tokens", minimum=0),
            _key("outputTokens", "integer", "Tokens the model generated",
                 "output_tokens", "completion_tokens", minimum=0),
            _key("status", "string", "Outcome of the call", choices=["success", "error"]),
            _key("errorType", "string", "Error class or provider error code when status is error", "error_type"),
        ],
        "enforcement": "reject",
        "unknown_keys": "flag_similar",
    },
}


def default_taxonomy() -> dict:
    """A fresh deep copy of DEFAULT_TAXONOMY, safe to edit and store."""
    return copy.deepcopy(DEFAULT_TAXONOMY)


