"""Traffic routers: split requests between the stable and the canary version."""
