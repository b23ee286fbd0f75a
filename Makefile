# Celeris build helpers.  `make run` and `make test` are the README's two commands.
PYTHON ?= python3
CC ?= gcc
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -Isrc/core
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CORE_SRC = $(wildcard src/core/*.c)
C_TESTS = $(patsubst tests/c/%.c,build/ctest/%,$(filter-out tests/c/test_main.c,$(wildcard tests/c/test_*.c)))
FUZZERS = $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60

.PHONY: test-pyversions conformance differential-docs all install run test ctest ctest-asan pytest pytest-asan ext-asan fuzz fuzz-build bench clean \
	ext-debug valgrind soak fuzz-regress malformed

all: install

install:
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	$(PYTHON) -m pip install -q --no-build-isolation .

run: install
	$(PYTHON) -m celeris run examples.hello:app --host 127.0.0.1 --port 8000

test: install ctest ctest-asan pytest pytest-asan

build/ctest/%: tests/c/%.c $(CORE_SRC) tests/c/test.h tests/c/http1_parse_ref.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Itests/c $< $(CORE_SRC) -o $@ -lz

build/ctest-asan/%: tests/c/%.c $(CORE_SRC) tests/c/test.h tests/c/http1_parse_ref.inc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(SAN_FLAGS) -Itests/c $< $(CORE_SRC) -o $@ -lz

ctest: $(C_TESTS)
	@set -e; for t in $^; do echo "== $$t"; ./$$t; done

ctest-asan: $(patsubst build/ctest/%,build/ctest-asan/%,$(C_TESTS))
	@set -e; for t in $^; do echo "== $$t (asan)"; ./$$t; done

pytest:
	$(PYTHON) -m pytest -q tests/python

# The extension built with ASan+UBSan into build/asan (package copied beside it),
# then the whole Python suite run against it (servers are subprocesses and
# inherit PYTHONPATH/LD_PRELOAD).
ASAN_RT = $(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)
ext-asan:
	rm -rf build/asan && mkdir -p build/asan
	CELERIS_SANITIZE=1 $(PYTHON) setup.py -q build_ext --build-lib build/asan --build-temp build/asan-tmp
	cp -r python/celeris/*.py python/celeris/py.typed python/celeris/native build/asan/celeris/

# Reports go to build/asan-report.* (pytest's capture would swallow them when
# the sanitizer aborts the process) and are printed on failure.
pytest-asan: ext-asan
	rm -f build/asan-report.*
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(CURDIR)/build/asan-report \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/build/asan-report \
	  LD_PRELOAD="$(ASAN_RT)" PYTHONPATH=$(CURDIR)/build/asan CELERIS_EXPECT_SANITIZED=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/python \
	  || (cat build/asan-report.* 2>/dev/null; exit 1)

# The Python suite on the other CPython versions this machine has (the ends
# of the supported 3.10-3.14 range): each gets its own build of the extension
# in build/py<ver> and the test dependencies in its own site-packages.
PY_VERSIONS ?= 3.10 3.13
test-pyversions:
	@set -e; for v in $(PY_VERSIONS); do \
	  py=""; for c in $$(command -v python$$v) $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python$$v 2>/dev/null); do \
	    if $$c -c pass 2>/dev/null; then py=$$c; break; fi; done; \
	  if [ -z "$$py" ]; then echo "== python$$v: not installed on this machine"; continue; fi; \
	  echo "== python$$v ($$py)"; \
	  $$py -m pip install -q setuptools wheel fastapi httpx pytest pytest-timeout uvloop uvicorn hypothesis python-multipart websockets pyyaml sniffio; \
	  rm -rf build/py$$v && $$py setup.py -q build_ext --build-lib build/py$$v --build-temp build/py$$v-tmp; \
	  cp -r python/celeris/*.py python/celeris/py.typed python/celeris/native build/py$$v/celeris/; \
	  PYTHONPATH=$(CURDIR)/build/py$$v $$py -m pytest -q -p no:cacheprovider tests/python \
	    --deselect tests/python/test_cli.py::test_console_script_entry_point; \
	done

build/fuzz/%: fuzz/%.c $(CORE_SRC) tests/c/http1_parse_ref.inc
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc/core -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $< $(CORE_SRC) -o $@ -lz

fuzz-build: $(FUZZERS)

# Generated inputs go to build/corpus/<driver> (libFuzzer writes to its first
# directory); the committed seeds and the regression inputs are read as well.
fuzz: fuzz-build
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  echo "== $$n $(FUZZ_SECONDS)s"; \
	  ./$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -dict=fuzz/$$n.dict build/corpus/$$n fuzz/corpus/$$n \
	    $$(test -d fuzz/regressions/$$n && echo fuzz/regressions/$$n); done

# Every committed input (seed corpus and fuzz/regressions/<driver>, the
# reproducers of past findings) replayed once through its driver with the
# invariants and sanitizers on; no fuzzing, no new inputs written.
fuzz-regress: fuzz-build
	@set -e; mkdir -p build/fuzz-regress; for f in $(FUZZERS); do n=$$(basename $$f); \
	  files=$$(find fuzz/corpus/$$n fuzz/regressions/$$n -type f 2>/dev/null | sort); \
	  if ./$$f -runs=0 $$files > build/fuzz-regress/$$n.log 2>&1; then \
	    echo "== $$n: $$(echo $$files | wc -w) inputs replayed, ok"; \
	  else echo "== $$n: FAILED"; tail -40 build/fuzz-regress/$$n.log; exit 1; fi; \
	done

# FastAPI's own test suite, stock vs. through Celeris (see docs/conformance.md).
# FASTAPI_VERSION=0.115.14 for the oldest supported release; CONFORMANCE_ARGS
# for more options (e.g. "--only celeris" to reuse the last stock outcomes).
# Exit status 1: a regression not in conformance/known_regressions-<version>.txt.
FASTAPI_VERSION ?= 0.165.0
CONFORMANCE_ARGS ?=
conformance:
	$(PYTHON) conformance/run.py --fastapi-version $(FASTAPI_VERSION) $(CONFORMANCE_ARGS)

# FastAPI's docs_src tutorial apps (from the installed FastAPI's sdist, cached
# with the conformance download in build/conformance/<version>): every request
# sent to the native tier and to the ASGI tier, answers compared byte for byte.
# Exit status 1 on a mismatch (docs/native.md, "Proof").  DIFFERENTIAL_ARGS
# for options, e.g. "-k security -v".
DIFFERENTIAL_ARGS ?=
differential-docs:
	$(PYTHON) tests/differential/docs_apps.py $(DIFFERENTIAL_ARGS)

# The malformed/abusive input matrix over real sockets (tests/malformed/matrix.py):
# every case with its expected answer, then a fresh request must be served.
# Writes docs/reliability-matrix.md and build/malformed.json; exit status 1 on
# a mismatch.  Uses the installed celeris, or the one an existing PYTHONPATH
# points at.  MALFORMED_ARGS: e.g. "-k chunk" (no .md written then).
MALFORMED_ARGS ?=
malformed:
	$(PYTHON) tests/malformed/matrix.py $(MALFORMED_ARGS)

bench: install
	$(PYTHON) bench/run.py

# The extension built with -O0 -g into build/valgrind (package copied beside it).
ext-debug:
	rm -rf build/valgrind && mkdir -p build/valgrind
	CELERIS_DEBUG=1 $(PYTHON) setup.py -q build_ext --build-lib build/valgrind --build-temp build/valgrind-tmp
	cp -r python/celeris/*.py python/celeris/py.typed python/celeris/native build/valgrind/celeris/

# A Celeris server under valgrind memcheck, VALGRIND_REQUESTS requests of every
# kind; fails on any error or definite leak with a frame in _celeris*.so.
# Report: build/valgrind-report/summary.json (see docs/reliability.md).
VALGRIND_REQUESTS ?= 10000
valgrind: ext-debug
	PYTHONPATH=$(CURDIR)/build/valgrind $(PYTHON) tests/valgrind/memcheck.py \
	  --requests $(VALGRIND_REQUESTS) --out build/valgrind-report

# bench/apps/fastapi_app.py under full wrk load for SOAK_SECONDS, server RSS
# sampled every 10 s; growth after warm-up -> bench/results/soak.json.
SOAK_SECONDS ?= 600
soak:
	$(PYTHON) bench/soak.py --seconds $(SOAK_SECONDS) --out bench/results/soak.json

clean:
	rm -rf build dist *.egg-info python/celeris/*.so
