"""A fake CI OIDC issuer, shaped like GitHub Actions, GitLab CI/CD or CircleCI: real RSA keys,
discovery, JWKS, signed JWTs with the provider's claims, and the job environment npm reads (GitHub's
ID-token request endpoint, or `NPM_ID_TOKEN` for GitLab and CircleCI)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

REQUEST_TOKEN = "runner-request-token"

# A CircleCI job's ids (UUIDs, as CircleCI writes them): organization, project, pipeline definition.
CIRCLECI_ORG = "0b6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a01"
CIRCLECI_PROJECT = "1c7d9b9f-6e2a-4d5b-8b68-2d1a4f2e3b02"
CIRCLECI_PIPELINE_DEFINITION = "2d8eac0a-7f3b-4e6c-9c79-3e2b5a3f4c03"
CIRCLECI_VCS_ORIGIN = "github.com/acme/widget"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIssuer:
    def __init__(self, kind: str = "github") -> None:
        assert kind in ("github", "gitlab", "circleci"), kind
        self.kind = kind
        self.key = _rsa_key()
        self.kid = "test-key-1"
        self.rogue_key = _rsa_key()  # never published in the JWKS
        self.jobs: dict[str, dict] = {}
        self.jwks_requests = 0
        self.jwks_requests_by_path: dict[str, int] = {}  # CircleCI: each organization's issuer has its own
        self.jwks_delay = 0.0  # seconds the JWKS answer takes (a slow issuer)
        self.token_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "FakeIssuer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    # --- tokens ----------------------------------------------------------------------------
    def claims(self, audience: str = "npm:127.0.0.1", **overrides) -> dict:
        now = int(time.time())
        standard = {"iss": self.url, "aud": audience, "jti": str(uuid.uuid4()), "iat": now, "nbf": now,
                    "exp": now + 300}
        if self.kind == "circleci":  # one issuer per organization, and no jti, nbf
            standard = {"aud": audience, "iat": now, "exp": now + 300}
        shaped = {"github": self._github, "gitlab": self._gitlab, "circleci": self._circleci}[self.kind]
        claims = {**standard, **shaped(**overrides)}
        return {k: v for k, v in claims.items() if v is not None}

    def _gitlab(self, project: str = "acme/widget", file: str = ".gitlab-ci.yml", **overrides) -> dict:
        """Claims as GitLab.com documents them for a job on a protected branch, GitLab-hosted runner."""
        namespace = project.rsplit("/", 1)[0]
        host = self.url.split("://", 1)[1]
        claims = {
            "sub": f"project_path:{project}:ref_type:branch:ref:main", "namespace_id": "3003",
            "namespace_path": namespace, "project_id": "4004", "project_path": project, "user_id": "55",
            "user_login": "gitlab-dev", "user_email": "dev@example.com", "user_access_level": "maintainer",
            "pipeline_id": "888", "pipeline_source": "push", "job_id": "999", "ref": "main", "ref_type": "branch",
            "ref_path": "refs/heads/main", "ref_protected": "true", "runner_id": 12,
            "runner_environment": "gitlab-hosted", "sha": "0123456789abcdef0123456789abcdef01234567",
            "project_visibility": "private", "ci_config_ref_uri": f"{host}/{project}//{file}@refs/heads/main",
            "ci_config_sha": "0123456789abcdef0123456789abcdef01234567",
        }
        claims.update(overrides)
        return claims

    @property
    def circleci_prefix(self) -> str:
        """What STAGEGATE_OIDC_CIRCLECI_ISSUER_PREFIX names for this fake (as https://oidc.circleci.com/org/)."""
        return f"{self.url}/org/"

    def _circleci(self, org: str = CIRCLECI_ORG, project: str = CIRCLECI_PROJECT,
                  definition: str = CIRCLECI_PIPELINE_DEFINITION, vcs_origin: str = CIRCLECI_VCS_ORIGIN,
                  **overrides) -> dict:
        """Claims as CircleCI writes them for a job of a pipeline triggered by a push to main."""
        ns = "oidc.circleci.com/"
        claims = {
            "iss": self.circleci_prefix + org,
            "sub": f"org/{org}/project/{project}/user/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
            f"{ns}org-id": org, f"{ns}project-id": project, f"{ns}pipeline-definition-id": definition,
            f"{ns}vcs-origin": vcs_origin, f"{ns}vcs-ref": "refs/heads/main", f"{ns}context-ids": [],
            f"{ns}ssh-rerun": False, f"{ns}pipeline-id": str(uuid.uuid4()), f"{ns}workflow-id": str(uuid.uuid4()),
            f"{ns}job-id": str(uuid.uuid4()),
        }
        for key, value in overrides.items():  # `ssh_rerun=True` stands for oidc.circleci.com/ssh-rerun
            name = key if key in ("iss", "sub", "jti") or key.startswith(ns) else ns + key.replace("_", "-")
            claims[name] = value
        return claims

    def _github(self, repository: str = "acme/widget", workflow: str = "release.yml", **overrides) -> dict:
        owner = repository.split("/")[0]
        claims = {
            "sub": f"repo:{repository}:ref:refs/heads/main",
            "repository": repository, "repository_id": "1001", "repository_owner": owner,
            "repository_owner_id": "2002", "workflow_ref": f"{repository}/.github/workflows/{workflow}@refs/heads/main",
            "job_workflow_ref": f"{repository}/.github/workflows/{workflow}@refs/heads/main",
            "ref": "refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567", "run_id": "777",
            "run_attempt": "1", "actor": "octocat", "event_name": "push", "repository_visibility": "private",
            "runner_environment": "github-hosted",
        }
        claims.update(overrides)
        return claims

    def sign(self, claims: dict, *, key=None, kid: str | None = "default", alg: str = "RS256") -> str:
        headers = {"kid": self.kid if kid == "default" else kid} if kid is not None else {}
        return jwt.encode(claims, key or self.key, algorithm=alg, headers=headers)

    def token(self, **claim_overrides) -> str:
        return self.sign(self.claims(**claim_overrides))

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def job(self, **claim_overrides) -> dict[str, str]:
        """The environment the CI gives a job that may ask for an ID token, bound to these claims:
        GitHub's request endpoint (`id-token: write`), or the token itself in `NPM_ID_TOKEN` (GitLab's
        `id_tokens: NPM_ID_TOKEN: aud: npm:<host>`, CircleCI's)."""
        if self.kind != "github":
            flag = {"gitlab": "GITLAB_CI", "circleci": "CIRCLECI"}[self.kind]
            return {flag: "true", "NPM_ID_TOKEN": self.token(**claim_overrides)}
        job_id = uuid.uuid4().hex
        self.jobs[job_id] = claim_overrides
        return {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/token?job={job_id}",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}

    # --- HTTP ------------------------------------------------------------------------------
    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, body: dict, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                base = parts.path.rsplit("/.well-known/", 1)[0]  # "" or, for CircleCI, /org/<org-id>
                if parts.path.endswith("/.well-known/openid-configuration"):
                    self._json({"issuer": issuer.url + base, "jwks_uri": f"{issuer.url}{base}/.well-known/jwks",
                                "id_token_signing_alg_values_supported": ["RS256"]})
                elif parts.path.endswith("/.well-known/jwks"):
                    issuer.jwks_requests += 1
                    issuer.jwks_requests_by_path[base] = issuer.jwks_requests_by_path.get(base, 0) + 1
                    time.sleep(issuer.jwks_delay)
                    jwk = json.loads(RSAAlgorithm.to_jwk(issuer.key.public_key()))
                    self._json({"keys": [{**jwk, "kid": issuer.kid, "alg": "RS256", "use": "sig"}]})
                elif parts.path == "/token":
                    self._token(parse_qs(parts.query))
                else:
                    self._json({"error": "not found"}, 404)

            def _token(self, query: dict) -> None:
                issuer.token_requests += 1
                if self.headers.get("authorization") != f"Bearer {REQUEST_TOKEN}":
                    self._json({"message": "bad request token"}, 401)
                    return
                overrides = issuer.jobs.get(query.get("job", [""])[0])
                if overrides is None:
                    self._json({"message": "unknown job"}, 404)
                    return
                audience = query.get("audience", ["sigstore"])[0]
                self._json({"value": issuer.sign(issuer.claims(audience=audience, **overrides))})

        return Handler
