"""Pacing against TPM (60 s window) and RPM (10 s windows) the way Azure counts them,
learning from the ``x-ratelimit-*`` headers."""
