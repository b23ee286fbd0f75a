"""pytest plugin for the "stock" run: imports the TestClient modules as early as
celeris_plugin does in the Celeris run.

celeris_plugin imports fastapi.testclient / starlette.testclient while pytest
loads plugins, before the project's filterwarnings=error applies; a warning
raised at that import (e.g. a dependency's deprecation) is then not an error.
Importing them at the same point here keeps both runs' environments identical,
so such a warning cannot show up as a difference between them.
It also counts the requests each test sends (see outcomes_plugin).
"""
import fastapi.testclient  # noqa: F401
import starlette.testclient

import outcomes_plugin

# Per-test accounting: requests sent through Starlette's transport.
outcomes_plugin.count_requests_of(starlette.testclient._TestClientTransport)
