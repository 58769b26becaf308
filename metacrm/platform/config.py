"""Configuration from the environment (METACRM_*), as API.md lists it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'metacrm.db'}"


@dataclass
class Config:
    database_url: str = field(default_factory=default_database_url)
    redis_url: str | None = None
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    admin_password: str | None = None
    sweep_interval: int = 300
    phone_region: str = "CN"
    smtp_url: str | None = None
    cookie_secure: bool = False  # mark the session cookie Secure (set when served over HTTPS)
    mass_job_threshold: int = 1000  # a mass action on more records runs as a background job
    testing: bool = False
    max_file_bytes: int = 10 * 1024 * 1024  # one uploaded file (METACRM_MAX_FILE_MB)

    @classmethod
    def from_env(cls, **overrides) -> Config:
        env = os.environ
        config = cls(
            database_url=env.get("METACRM_DATABASE_URL") or default_database_url(),
            redis_url=env.get("METACRM_REDIS_URL") or None,
            secret_key=env.get("METACRM_SECRET_KEY") or None,
            host=env.get("METACRM_HOST", "127.0.0.1"),
            port=int(env.get("METACRM_PORT", "5000")),
            admin_password=env.get("METACRM_ADMIN_PASSWORD") or None,
            sweep_interval=int(env.get("METACRM_SWEEP_INTERVAL", "300")),
            phone_region=env.get("METACRM_PHONE_REGION", "CN"),
            smtp_url=env.get("METACRM_SMTP_URL") or None,
            cookie_secure=env.get("METACRM_COOKIE_SECURE", "").strip().lower() in ("1", "true", "yes", "on"),
            max_file_bytes=int(float(env.get("METACRM_MAX_FILE_MB", "10")) * 1024 * 1024),
            mass_job_threshold=int(env.get("METACRM_MASS_JOB_THRESHOLD", "1000")),
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config
