"""The shift lead's console: server-rendered pages of alerts and actions, with login and CSRF."""
