"""gunicorn settings. The service's configuration is validated here, before any worker is forked,
so a bad variable stops the server at once with a message naming it."""

import os
import sys

from wallet_service.config import ConfigError, load_config

try:
    _config = load_config()
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")

wsgi_app = "wallet_service.wsgi:application"
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
workers = _config.workers
worker_class = "sync"
timeout = 30
graceful_timeout = 30
loglevel = _config.log_level
accesslog = "-"
errorlog = "-"
# gunicorn's control socket lives in the home directory by default: two servers on one machine would
# share it, and a container's unprivileged user may have no home to write to.
control_socket_disable = True
