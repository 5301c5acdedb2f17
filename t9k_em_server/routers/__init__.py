"""HTTP routers: AIStore API (auth, nodes, objects, graphs) and the web UI's JSON API."""
