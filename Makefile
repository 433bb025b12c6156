# pygrate — the two commands a new user needs: `make run` and `make test`.
CARGO ?= cargo
BIN := target/release/pygrate

.PHONY: build run test lint bench clean

build:
	$(CARGO) build --release --locked

## Build, then fast-forward the sample project (releases/, conf.d/dev.yaml) on SQLite.
run: build
	./$(BIN) ff
	./$(BIN) status

## Every test: unit tests beside the code, property tests, the integration
## tests in tests/ against SQLite, PostgreSQL and MariaDB (servers unreachable:
## skipped loudly; under CI=true: failed), and the doc examples.
test:
	$(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## Benchmarks: criterion on the pure parts, then the shared side-by-side harness.
bench: build
	$(CARGO) bench --locked --bench pure
	./scripts/bench.sh

clean:
	$(CARGO) clean
	rm -f hellodb hellodb.*.lock
