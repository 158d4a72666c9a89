"""The KFP v2beta1 JSON contract as Pydantic models, shared by the API and the client.

Input models (``...Create``/requests) forbid unknown fields; output models are what the
server emits (snake_case proto names, enums by name, RFC 3339 times, int64 as strings).
"""
