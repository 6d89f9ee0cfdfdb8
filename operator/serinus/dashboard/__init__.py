"""The rollout dashboard: a read-only web page and JSON API over what the drivers decided.

`timeline.py` keeps, in memory, the latest status of each ModelDeployment and a bounded
timeline of its rollouts (fed by the Kubernetes driver and the local controller at the point
they persist a decision); `api.py` builds the JSON documents; `charts.py` draws the timeline as
SVG on the server; `server.py` serves pages, API and static assets over HTTP, GET only.
See docs/dashboard.md.
"""
