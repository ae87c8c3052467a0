"""Every variable the service reads is settable in every deployment: the deploy check's wiring test.

The names are those the service's code reads (``"WALLET_SERVICE_..."`` and ``DATABASE_URL`` in
wallet_service/, tests aside); each must be passed by docker-compose.yml, documented in
.env.example and rendered by the playbook's template. A variable added to the code but forgotten
in one of them fails here, naming both.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"""["'](WALLET_SERVICE_[A-Z0-9_]+|DATABASE_URL)["']""")
DEPLOYMENT_FILES = ["docker-compose.yml", ".env.example", "deploy/templates/dotenv.j2"]


def main() -> int:
    sources = [path for path in (ROOT / "wallet_service").rglob("*.py") if "tests" not in path.parts]
    names = sorted({name for path in sources for name in NAME.findall(path.read_text())})
    if "WALLET_SERVICE_SECRET_KEY" not in names:
        print("no WALLET_SERVICE_* variable found in wallet_service/: the pattern is out of date")
        return 1
    missing = [(name, file) for file in DEPLOYMENT_FILES for name in names if name not in (ROOT / file).read_text()]
    for name, file in missing:
        print(f"{name} is read by the service but not set in {file}")
    if missing:
        return 1
    print(f"{len(names)} variables wired in {', '.join(DEPLOYMENT_FILES)}: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
