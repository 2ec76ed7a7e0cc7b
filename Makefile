# iamd: the two commands of the quick start, and the checks CI runs.
#   make run    find or provide PostgreSQL, migrate, bootstrap (the first admin API key is
#               printed once) and serve HTTP on 127.0.0.1:8080
#   make test   provision PostgreSQL, the Kafka-protocol broker (tansu), headless Chromium
#               (for the /docs test) and TrustGraph's published client code (a Python
#               virtual environment from PyPI), an SMTP server for the mail tests (aiosmtpd
#               from PyPI), and run every test (each test makes its own database and starts
#               its own broker and SMTP server)
#   make lint   rustfmt, no import cycle between src/'s top-level modules (scripts/layers.py)
#               and clippy, warnings as errors
#   make bench  provision like `make test`, build in release mode and run `iamd bench`, which
#               prints every performance budget's figures (ARGS="--json" or "--only resolve")

.PHONY: run test lint bench

run:
	@scripts/run.sh $(ARGS)

test:
	@admin=$$(scripts/postgres.sh) || exit 1; \
	tansu=$$(scripts/tansu.sh) || exit 1; \
	chromium=$$(scripts/chromium.sh) || exit 1; \
	trustgraph=$$(scripts/trustgraph.sh) || exit 1; \
	smtp=$$(scripts/smtp.sh) || exit 1; \
	IAMD_TEST_PG_URL=$$admin IAMD_TEST_TANSU=$$tansu IAMD_TEST_CHROMIUM=$$chromium \
		IAMD_TEST_TRUSTGRAPH=$$trustgraph IAMD_TEST_SMTP=$$smtp cargo test --locked $(TEST_ARGS)

lint:
	cargo fmt --check
	python3 scripts/layers.py
	cargo clippy --locked --all-targets -- -D warnings

bench:
	@scripts/bench.sh $(ARGS)
