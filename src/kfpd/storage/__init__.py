"""Object storage: upstream's kfp-launcher configuration, per-URI sessions, fsspec filesystems.

Nothing here touches the database: the server (services/storage.py) and the launcher both use
it. ``launcher_config`` parses the ConfigMap data and decides, purely, which provider settings
serve a URI (upstream's ``store_session_info``, no secret values); ``sessions`` turns those
settings plus credentials into fsspec options; ``stores`` opens and reads the filesystems.
"""
