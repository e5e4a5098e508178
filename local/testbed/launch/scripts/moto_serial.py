"""moto_server, one request at a time.

moto's own server is multi-threaded and its DynamoDB backend does not lock
around a conditional write, so two concurrent UpdateItem calls can both pass
the same condition; real DynamoDB never lets that happen. Serving requests one
at a time makes moto's conditional writes atomic, as DynamoDB's are. This is a
quirk of the emulator, worked around here, in the test launcher.
"""
import sys

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)
