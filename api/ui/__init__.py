"""The dashboard (/ui): server-rendered pages over the API's own services, signed in with an API key."""
