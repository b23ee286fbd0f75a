"""Celeris conformance run only (conformance/run.py puts this directory on
PYTHONPATH): every interpreter, including those a test starts, serves
TestClient requests through Celeris.  See conformance/celeris_autopatch.py."""
import celeris_autopatch

celeris_autopatch.install()
