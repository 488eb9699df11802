"""Who may call over HTTP: local users, API tokens, web sessions, OpenID Connect, roles."""
