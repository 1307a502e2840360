"""The gateway: alignstream behind the OpenAI HTTP API, tenant API keys, the rules REST API and
the check endpoint (``docs/architecture.md``)."""
