"""Create (or update) one account of an MLflow server with logins, and grant it a permission on
every experiment and registered model, through the server's REST API as its admin.

docker-compose.yml runs it once the server is healthy, for the workers' account (EDIT: write runs
and models, not administer). Everything comes from the environment, nothing is printed but names:
  MLFLOW_TRACKING_URI                                   the server
  MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD    the admin
  MLFLOW_ACCOUNT_USERNAME, MLFLOW_ACCOUNT_PASSWORD      the account to create or update
  MLFLOW_ACCOUNT_PERMISSION                             READ, EDIT or MANAGE (default EDIT)
Running it again is harmless: an existing account gets the password from the environment.
"""

import os
import sys

import requests

TIMEOUT_S = 30


def main() -> int:
    base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    admin = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    user, password = os.environ["MLFLOW_ACCOUNT_USERNAME"], os.environ["MLFLOW_ACCOUNT_PASSWORD"]
    permission = os.environ.get("MLFLOW_ACCOUNT_PERMISSION", "EDIT")

    def call(method: str, path: str, body: dict) -> requests.Response:
        return requests.request(method, f"{base}{path}", json=body, auth=admin, timeout=TIMEOUT_S)

    created = call("POST", "/api/2.0/mlflow/users/create", {"username": user, "password": password})
    if created.status_code != 200:
        if "RESOURCE_ALREADY_EXISTS" not in created.text:
            print(f"mlflow-accounts: creating user {user!r} failed: HTTP {created.status_code}", file=sys.stderr)
            return 1
        updated = call("PATCH", "/api/2.0/mlflow/users/update-password", {"username": user, "password": password})
        if updated.status_code != 200:
            print(f"mlflow-accounts: updating user {user!r} failed: HTTP {updated.status_code}", file=sys.stderr)
            return 1
    for kind in ("experiment", "registered_model"):
        grant = {"username": user, "resource_type": kind, "resource_id": "*", "permission": permission}
        answer = call("POST", "/api/3.0/mlflow/users/permissions/grant", grant)
        if answer.status_code != 200 and "RESOURCE_ALREADY_EXISTS" not in answer.text:
            failed = f"granting {permission} on every {kind} failed: HTTP {answer.status_code}"
            print(f"mlflow-accounts: {failed}", file=sys.stderr)
            return 1
    print(f"mlflow-accounts: user {user!r} may {permission} every experiment and registered model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
