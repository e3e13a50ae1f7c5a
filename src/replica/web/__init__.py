"""`replica serve`: the web console (server-rendered pages) and the HTTP API, on FastAPI and uvicorn.

Layers: `app` builds the application; `auth` turns a token into a holder with a role; `api` (JSON) and `pages`
(HTML) read through the actions and the catalog, and start work through `operations`, which hands it to the
background `tasks` runner. Nothing here runs a process or talks to S3 itself.
"""
