"""The model names dgm suggests, per endpoint and role: the one place to update when providers move on.

The example configs in experiments/endpoints/ use exactly these names (tests/test_endpoints.py
checks it), and every hosted one has a price in prices.yaml or in its config.
"""

ROLES = ("task", "self_modify", "diagnosis")

SUGGESTED_MODELS: dict[str, dict[str, str]] = {
    "openai": {"task": "gpt-4.1", "self_modify": "gpt-4.1", "diagnosis": "o3"},
    "anthropic": dict.fromkeys(ROLES, "claude-sonnet-4-20250514"),
    "openrouter": {"task": "anthropic/claude-sonnet-4", "self_modify": "anthropic/claude-sonnet-4",
                   "diagnosis": "openai/o3"},
    "vllm": dict.fromkeys(ROLES, "Qwen/Qwen2.5-Coder-32B-Instruct"),
    "ollama": dict.fromkeys(ROLES, "qwen2.5-coder:7b"),
    "llamacpp": dict.fromkeys(ROLES, "local"),  # llama.cpp serves whatever -m loaded
}
