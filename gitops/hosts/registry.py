"""Ask a container registry which digest a tag names now, the way dockerd would reach it.

One ``RegistryClient`` lives for one reconciliation pass: it resolves ``image:tag`` to the
``sha256:`` digest the registry serves at that moment (a HEAD of the manifest, with the Accept
header listing the OCI and Docker manifest and index types), so the engine can create containers
from ``name@digest`` and notice that a tag moved. Answers are cached for the life of the client.

Credentials: those declared in the repository win; otherwise the docker config of the user the
reconciler runs as (``DOCKER_CONFIG`` or ``~/.docker/config.json``: ``auths``, ``credHelpers``,
``credsStore``), read through docker-py's own ``docker.auth``. They are looked up only when the
registry asks (401), then used for Basic auth or to get a Bearer token from the realm the registry
names (refused when that realm is plain http and the registry was reached over https).

TLS: the system trust store plus every ``*.crt`` in ``<certs_dir>/<host:port>/`` (Docker's own
convention, the same files dockerd reads). A registry on a loopback address falls back to plain
http when https cannot connect, as Docker does for loopback; no other address ever does.

Bounds: no redirects followed, every request has a connect and read timeout, bodies are read up to a
limit (a manifest 4 MiB, a token answer 1 MiB), headers are bounded by http.client (64 KiB a line,
100 lines) and the challenge header by this module. Errors name the registry and the image and say
what to do; they never hold a password or a token.

Hand-written because no maintained Python library fits: python-dxf takes a username/password callback
and a single CA bundle (no docker config, credential helpers or certs.d), and oras-py reads only the
``auths`` of a docker config and reads token answers unbounded; what is needed is two or three requests.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import docker.auth
import docker.errors
import docker.utils.config
import requests
import requests.adapters
import requests.exceptions
import requests.utils

from gitops.core.images import DOCKER_HUB, ImageRef, is_digest, normalize_registry, parse_image
from gitops.core.model import DesiredState
from gitops.errors import GitopsError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_MAX = 4 * 1024 * 1024  # a manifest or index; real ones are a few KiB
TOKEN_ANSWER_MAX = 1024 * 1024
TOKEN_MAX = 64 * 1024
CHALLENGE_MAX = 8 * 1024
ERROR_BODY_MAX = 64 * 1024
USER_AGENT = "gitops-registry-client"

_NO_CREDENTIALS: Mapping[str, Credentials] = MappingProxyType({})
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Credentials:
    """A username and password for one registry, and where they came from (for error messages)."""

    username: str
    password: str = field(repr=False)
    origin: str  # e.g. "Registry 'private' (registries.yaml:3)" or "docker config /root/.docker/config.json"
    identity_token: str = field(default="", repr=False)  # an OAuth refresh token from `docker login`, if any

    def auth_config(self) -> dict[str, str]:
        """The ``auth_config`` docker-py's pull and push take."""
        config = {"username": self.username, "password": self.password}
        if self.identity_token:
            config["identitytoken"] = self.identity_token
        return config


class RegistryError(GitopsError):
    """A registry could not say what a tag names. ``temporary``: unreachable, timeouts, 429 and 5xx."""

    def __init__(self, registry: str, message: str, *, image: str = "", temporary: bool = False) -> None:
        super().__init__(message, temporary=temporary)
        self.registry = registry
        self.image = image


class _TrustAdapter(requests.adapters.HTTPAdapter):
    """HTTPS with one SSL context: the system store plus a registry's certs.d CAs (requests knows only a bundle)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Always verify, against our context only (requests would add its certifi bundle here).
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class RegistryClient:
    """Resolves tags to digests for one pass. Safe to share between threads."""

    def __init__(self, credentials: Mapping[str, Credentials] = _NO_CREDENTIALS, *, docker_config: bool = True,
                 certs_dir: Path = Path("/etc/docker/certs.d"), timeout: float = 10.0) -> None:
        self._declared = {normalize_registry(name): creds for name, creds in credentials.items()}
        self._use_docker_config = docker_config
        self._certs_dir = Path(certs_dir)
        self._timeout = float(timeout)
        self._session = requests.Session()
        self._session.trust_env = False  # no ~/.netrc Authorization, no CA bundle from the environment
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept-Encoding"] = "identity"  # digests are of the bytes as stored; no inflating
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str, str], str] = {}
        self._credentials: dict[str, Credentials | None] = {}
        self._docker_auth: docker.auth.AuthConfig | None = None
        self._docker_config_path = ""
        self._schemes: dict[str, str] = {}  # api host -> "https", or "http" for a loopback registry without TLS
        self._authorization: dict[tuple[str, str], tuple[str, Credentials | None]] = {}
        self._mounted: set[str] = set()
        self._secrets: set[str] = {c.password for c in self._declared.values() if c.password}
        self._secrets |= {c.identity_token for c in self._declared.values() if c.identity_token}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- credentials -------------------------------------------------------------------------------------

    def credentials_for(self, registry: str) -> Credentials | None:
        """Declared credentials first, then the docker config of the user this process runs as."""
        key = normalize_registry(registry)
        with self._lock:
            if key in self._credentials:
                return self._credentials[key]
        creds = self._declared.get(key)
        if creds is None and self._use_docker_config:
            creds = self._from_docker_config(key)
        with self._lock:
            self._credentials[key] = creds
            if creds is not None:
                self._secrets |= {s for s in (creds.password, creds.identity_token) if s}
        return creds

    def _from_docker_config(self, key: str) -> Credentials | None:
        with self._lock:
            auth = self._docker_auth
        if auth is None:
            path = docker.utils.config.find_config_file() or ""
            try:
                auth = docker.auth.load_config(config_path=path) if path else docker.auth.AuthConfig({})
            except (docker.errors.DockerException, ValueError, OSError) as exc:
                raise RegistryError(key, f"the docker config {path} could not be read ({type(exc).__name__}) "
                                         f"while looking up credentials for registry {key}: fix the file, or "
                                         f"declare credentials for {key} in the repository") from None
            with self._lock:
                self._docker_auth, self._docker_config_path = auth, path
        path = self._docker_config_path
        helper = auth.get_credential_store(key)
        try:
            entry = self._ask_helper(auth, key, helper) if helper else _quiet_resolve(auth, key)
        except TimeoutError:
            raise RegistryError(key, f"the docker credential helper docker-credential-{helper} (named in the docker "
                                     f"config {path}) did not answer within {self.HELPER_TIMEOUT:g} s for registry "
                                     f"{key}: check that `docker-credential-{helper} get` answers for the user the "
                                     f"reconciler runs as", temporary=True) from None
        except (docker.errors.DockerException, ValueError, OSError, KeyError):
            # The helper's own output is left out: nothing says it cannot hold a secret.
            raise RegistryError(key, f"the docker credential helper docker-credential-{helper} (named in the "
                                     f"docker config {path}) failed to give credentials for registry {key}: check "
                                     f"that it is on PATH and that `docker-credential-{helper} get` works for the "
                                     f"user the reconciler runs as") from None
        if not entry:
            return None
        username = str(entry.get("username") or entry.get("Username") or "")
        password = str(entry.get("password") or entry.get("Password") or "")
        token = str(entry.get("IdentityToken") or "")
        if not (username and password) and not token:
            return None
        origin = f"docker config {path}"
        if "ServerAddress" in entry and helper:
            origin = f"docker credential helper docker-credential-{helper} (docker config {path})"
        return Credentials(username=username, password=password, origin=origin, identity_token=token)

    HELPER_TIMEOUT = 10.0  # seconds a credential helper has to answer

    def _ask_helper(self, auth: Any, key: str, helper: str) -> Any:
        """docker-py runs a credential helper with no timeout: a helper that hangs (waiting for a desktop
        keyring, say) must not hang the pass. It is asked in a thread of its own, left behind if it never
        answers (a daemon thread: it cannot keep the process from exiting)."""
        answer: list[Any] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def ask() -> None:
            try:
                answer.append(_quiet_resolve(auth, key))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=ask, name=f"docker-credential-{helper}", daemon=True).start()
        if not done.wait(self.HELPER_TIMEOUT):
            raise TimeoutError(helper)
        if failure:
            raise failure[0]
        return answer[0]

    # --- resolving -----------------------------------------------------------------------------------------

    def resolve(self, image: str) -> str:
        """The digest the registry serves for the image's tag now; an image given by digest needs no request.

        Raises ``RegistryError``, also for a malformed reference (never temporary then).
        """
        try:
            ref = parse_image(image)
        except ValueError as exc:
            raise RegistryError("", str(exc), image=str(image)[:300]) from None
        if ref.digest:
            return ref.digest
        key = (ref.registry, ref.repository, ref.tag)
        with self._lock:
            if key in self._digests:
                return self._digests[key]
        digest = self._resolve(ref)
        with self._lock:
            self._digests.setdefault(key, digest)
            return self._digests[key]

    def _resolve(self, ref: ImageRef) -> str:
        path = f"/v2/{ref.repository}/manifests/{ref.tag}"
        response = self._manifest("HEAD", ref, path)
        header = response.headers.get("Docker-Content-Digest", "").strip()
        response.close()
        if header:
            if not is_digest(header):
                raise self._error(ref, f"registry {ref.registry} answered for {ref} with a digest that is not "
                                       f"sha256:<64 hex> ({header[:100]!r}); gitops pins images by sha256 only")
            return header
        # Some registries leave the header off HEAD answers: the digest is then the hash of the manifest itself.
        response = self._manifest("GET", ref, path)
        body = self._read(ref, response, MANIFEST_MAX, "the manifest")
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def _manifest(self, method: str, ref: ImageRef, path: str) -> requests.Response:
        """A manifest request answered 2xx, authenticated when the registry asks for it."""
        scope = (ref.registry, ref.repository)
        with self._lock:
            # Basic credentials hold for every repository of the registry: no 401 round trip per image
            authorization, creds = self._authorization.get(scope) or self._authorization.get(
                (ref.registry, ""), ("", None))
        response = self._send(ref, method, path, authorization)
        if response.status_code == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            authorization, creds = self._authorize(ref, challenge)
            response = self._send(ref, method, path, authorization)
            if response.status_code == 401:
                response.close()
                raise self._unauthorized(ref, creds)
            with self._lock:
                self._authorization[scope] = (authorization, creds)
                if authorization.startswith("Basic "):
                    self._authorization[(ref.registry, "")] = (authorization, creds)
        if 200 <= response.status_code < 300:
            return response
        response.close()
        raise self._status_error(ref, response, creds, authorization)

    # --- authentication --------------------------------------------------------------------------------

    def _authorize(self, ref: ImageRef, header: str) -> tuple[str, Credentials | None]:
        if not header:
            raise self._error(ref, f"registry {ref.registry} answered 401 for {ref} without a WWW-Authenticate "
                                   f"header, so there is no way to log in: check the registry address")
        if len(header) > CHALLENGE_MAX:
            raise self._error(ref, f"registry {ref.registry} answered 401 for {ref} with a WWW-Authenticate "
                                   f"header of {len(header)} characters (at most {CHALLENGE_MAX} are read)")
        challenges = parse_challenges(header)
        try:
            creds = self.credentials_for(ref.registry)
        except RegistryError as exc:
            raise self._error(ref, f"{exc} (needed to read {ref})") from None
        if "bearer" in challenges:
            return self._bearer(ref, challenges["bearer"], creds), creds
        if "basic" in challenges:
            if creds is None:
                raise self._unauthorized(ref, None)
            if not creds.password:
                raise self._error(ref, f"registry {ref.registry} asks for a password for {ref}, but {creds.origin} "
                                       f"holds only an identity token: declare a username and password for "
                                       f"{ref.registry}")
            basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
            with self._lock:
                self._secrets.add(basic)
            return f"Basic {basic}", creds
        shown = ", ".join(sorted(challenges)) or header[:80]
        raise self._error(ref, f"registry {ref.registry} asks for an authentication scheme gitops does not speak "
                               f"({shown}) for {ref}; Basic and Bearer are supported")

    def _bearer(self, ref: ImageRef, params: dict[str, str], creds: Credentials | None) -> str:
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self._error(ref, f"registry {ref.registry} names a token service that is not an http(s) URL "
                                   f"({realm[:200]!r}) for {ref}")
        with self._lock:
            registry_scheme = self._schemes.get(ref.api_host, "https")
        if parts.scheme == "http" and registry_scheme == "https":
            raise self._error(ref, f"registry {ref.registry} is reached over https but sends gitops to a plain-http "
                                   f"token service ({parts.scheme}://{parts.netloc}) for {ref}: refused, the "
                                   f"credentials and the token would travel unencrypted; fix the registry's "
                                   f"auth.token.realm")
        query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Accept": "application/json"}
        if creds is not None and creds.identity_token:
            # OAuth2 refresh token (what `docker login` stores for some registries): POST, form-encoded.
            form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "gitops"}
            response = self._http(ref, "POST", realm, headers, data=form)
        else:
            if creds is not None:
                basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
                with self._lock:
                    self._secrets.add(basic)
                headers["Authorization"] = f"Basic {basic}"
            response = self._http(ref, "GET", realm, headers, params=query)
        status = response.status_code
        if status != 200:
            response.close()
            if status in (401, 403):
                raise self._unauthorized(ref, creds, token_service=f"{parts.scheme}://{parts.netloc}")
            if 300 <= status < 400:
                raise self._error(ref, f"the token service of registry {ref.registry} ({parts.netloc}) answered "
                                       f"{status} (a redirect) for {ref}; redirects are not followed")
            temporary = status == 429 or status >= 500
            raise self._error(ref, f"the token service of registry {ref.registry} ({parts.netloc}) answered HTTP "
                                   f"{status} for {ref}" + ("; it may answer later" if temporary else ""),
                              temporary=temporary)
        body = self._read(ref, response, TOKEN_ANSWER_MAX, "the token answer")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        token = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise self._error(ref, f"the token service of registry {ref.registry} ({parts.netloc}) gave no token "
                                   f"for {ref} (expected JSON with 'token' or 'access_token')")
        if len(token) > TOKEN_MAX or not _TOKEN_CHARS.fullmatch(token):
            raise self._error(ref, f"the token service of registry {ref.registry} ({parts.netloc}) gave a token "
                                   f"for {ref} that cannot go in a header (too long or not printable ASCII)")
        with self._lock:
            self._secrets.add(token)
        return f"Bearer {token}"

    # --- transport -----------------------------------------------------------------------------------------

    def _send(self, ref: ImageRef, method: str, path: str, authorization: str) -> requests.Response:
        host = ref.api_host
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if authorization:
            headers["Authorization"] = authorization
        with self._lock:
            known = self._schemes.get(host)
        if known is not None:
            return self._http(ref, method, f"{known}://{host}{path}", headers)
        failed: requests.exceptions.RequestException | None = None
        try:
            response = self._request(ref, method, f"https://{host}{path}", headers)
            scheme = "https"
        except requests.exceptions.RequestException as exc:
            if not is_loopback(host) or _untrusted_certificate(exc) is not None \
                    or not isinstance(exc, requests.exceptions.ConnectionError):
                raise self._transport_error(ref, exc, f"https://{host}") from None
            failed = exc
        if failed is not None:
            # Docker's rule for loopback registries: plain http when https cannot connect. (Outside the
            # except block above, so the http error does not carry the https one as its context.)
            try:
                response = self._request(ref, method, f"http://{host}{path}", headers)
            except requests.exceptions.RequestException as exc:
                if any(isinstance(c, ssl.SSLError) for c in _chain(failed)):
                    # Something answered, just not in TLS: what went wrong over http is the story.
                    raise self._transport_error(ref, exc, f"http://{host}") from None
                raise self._transport_error(ref, failed, f"https://{host}", also_http=True) from None
            scheme = "http"
        with self._lock:
            self._schemes.setdefault(host, scheme)
        return response

    def _http(self, ref: ImageRef, method: str, url: str, headers: dict[str, str], *,
              params: dict[str, str] | None = None, data: dict[str, str] | None = None) -> requests.Response:
        try:
            return self._request(ref, method, url, headers, params=params, data=data)
        except requests.exceptions.RequestException as exc:
            parts = urlsplit(url)
            raise self._transport_error(ref, exc, f"{parts.scheme}://{parts.netloc}") from None

    def _request(self, ref: ImageRef, method: str, url: str, headers: dict[str, str], *,
                 params: dict[str, str] | None = None, data: dict[str, str] | None = None) -> requests.Response:
        parts = urlsplit(url)
        if parts.scheme == "https":
            self._mount(ref, parts.netloc)
        # Proxies as dockerd takes them: HTTPS_PROXY / HTTP_PROXY / NO_PROXY of this process.
        proxies = requests.utils.get_environ_proxies(url)
        return self._session.request(method, url, headers=headers, params=params, data=data,
                                     timeout=(self._timeout, self._timeout), allow_redirects=False, stream=True,
                                     proxies=proxies)

    def _mount(self, ref: ImageRef, netloc: str) -> None:
        with self._lock:
            if netloc in self._mounted:
                return
        context = ssl.create_default_context()
        folder = self._certs_dir / netloc
        try:
            cas = sorted(folder.glob("*.crt")) if folder.is_dir() else []
        except OSError:
            cas = []
        for ca in cas:
            try:
                context.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise self._error(ref, f"the CA certificate {ca} for registry {ref.registry} could not be loaded "
                                       f"({type(exc).__name__}): replace it with the PEM certificate of the "
                                       f"registry's CA") from None
        with self._lock:
            if netloc not in self._mounted:
                self._session.mount(f"https://{netloc}/", _TrustAdapter(context))
                self._mounted.add(netloc)

    def _read(self, ref: ImageRef, response: requests.Response, limit: int, what: str) -> bytes:
        try:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                raise self._error(ref, f"registry {ref.registry} sent {what} for {ref} as {int(length)} bytes; "
                                       f"at most {limit} are read")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > limit:
                    raise self._error(ref, f"registry {ref.registry} sent {what} for {ref} larger than {limit} "
                                           f"bytes; at most {limit} are read")
                chunks.append(chunk)
            return b"".join(chunks)
        except requests.exceptions.RequestException as exc:
            parts = urlsplit(response.url)
            raise self._transport_error(ref, exc, f"{parts.scheme}://{parts.netloc}") from None
        finally:
            response.close()

    # --- errors ----------------------------------------------------------------------------------------------

    def _error(self, ref: ImageRef, message: str, *, temporary: bool = False) -> RegistryError:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            message = message.replace(secret, "***")
        return RegistryError(ref.registry, message, image=str(ref), temporary=temporary)

    def _unauthorized(self, ref: ImageRef, creds: Credentials | None, *, token_service: str = "") -> RegistryError:
        by = f" (its token service {token_service})" if token_service else ""
        if creds is None:
            where = "declared credentials"
            if self._use_docker_config:
                where += f", docker config {self._docker_config_path or '(none found)'}"
            return self._error(ref, f"registry {ref.registry}{by} requires credentials to read {ref} and none are "
                                    f"known for it (looked in: {where}): declare credentials for {ref.registry} "
                                    f"in the repository, or run `docker login {ref.registry}` as the user the "
                                    f"reconciler runs as. Registries also answer this way when the repository "
                                    f"does not exist.")
        who = f"user {creds.username!r}" if creds.username else "the identity token"
        return self._error(ref, f"registry {ref.registry}{by} refused the credentials of {who} from {creds.origin} "
                                f"for {ref} (401): check the username and password, and that the user may pull "
                                f"{ref.repository}")

    def _status_error(self, ref: ImageRef, response: requests.Response, creds: Credentials | None,
                      authorization: str) -> RegistryError:
        status = response.status_code
        if 300 <= status < 400:
            target = urlsplit(response.headers.get("Location", "")[:2000])
            where = f" to {target.scheme}://{target.netloc}" if target.netloc else ""
            return self._error(ref, f"registry {ref.registry} answered the manifest request for {ref} with a "
                                    f"redirect ({status}{where}); redirects are not followed: use the address "
                                    f"that serves the registry API itself")
        if status == 403:
            who = f"user {creds.username!r} from {creds.origin}" if creds is not None else "anonymous requests"
            return self._error(ref, f"registry {ref.registry} denied {who} access to {ref} (403): give the "
                                    f"user pull access to {ref.repository}")
        if status == 404:
            exists = self._repository_exists(ref, authorization)
            if exists is False:
                detail = f"has no repository {ref.repository!r}"
            elif exists:
                detail = f"has no tag {ref.tag!r} in repository {ref.repository!r}"
            else:
                detail = f"has no image {ref} (the repository or the tag does not exist)"
            return self._error(ref, f"registry {ref.registry} {detail} (404): check the image name and tag")
        if status == 429:
            return self._error(ref, f"registry {ref.registry} limits the rate of requests (429) and refused to "
                                    f"resolve {ref} now; it may answer later", temporary=True)
        if status >= 500:
            return self._error(ref, f"registry {ref.registry} failed to answer for {ref} (HTTP {status}); it may "
                                    f"answer later", temporary=True)
        return self._error(ref, f"registry {ref.registry} answered HTTP {status} for {ref}")

    def _repository_exists(self, ref: ImageRef, authorization: str) -> bool | None:
        """After a 404 for a tag: does the repository exist? Its tag list answers 200, or 404 with NAME_UNKNOWN;
        None when the registry does not say (not every registry serves tag lists)."""
        try:
            response = self._send(ref, "GET", f"/v2/{ref.repository}/tags/list?n=1", authorization)
            if response.status_code == 200:
                response.close()
                return True
            if response.status_code != 404:
                response.close()
                return None
            answer = json.loads(self._read(ref, response, ERROR_BODY_MAX, "an error"))
            codes = {e.get("code") for e in answer.get("errors", []) if isinstance(e, dict)}
        except (RegistryError, ValueError, AttributeError, TypeError):
            return None
        return False if "NAME_UNKNOWN" in codes else None

    def _transport_error(self, ref: ImageRef, exc: BaseException, origin: str, *,
                         also_http: bool = False) -> RegistryError:
        verify = _untrusted_certificate(exc)
        if verify is not None:
            netloc = urlsplit(origin).netloc
            return self._error(ref, f"registry {ref.registry} presented a TLS certificate that is not trusted "
                                    f"({verify}) at {origin} for {ref}: if it uses a private CA, put that CA's "
                                    f"certificate in {self._certs_dir / netloc / 'ca.crt'} (the file dockerd "
                                    f"reads too)")
        http_too = " (and over plain http, tried because the address is loopback)" if also_http else ""
        if isinstance(exc, requests.exceptions.Timeout):
            return self._error(ref, f"registry {ref.registry} did not answer within {self._timeout:g}s at "
                                    f"{origin}{http_too} for {ref}; it may answer later", temporary=True)
        causes = list(_chain(exc))
        if any(isinstance(c, ssl.SSLError) for c in causes):
            return self._error(ref, f"registry {ref.registry}: the TLS handshake with {origin} failed{http_too} "
                                    f"for {ref} ({_reason(causes)}): check that the registry serves https on "
                                    f"that port with a valid certificate")
        malformed = [c for c in causes if isinstance(c, http.client.HTTPException)
                     and not isinstance(c, ConnectionError)]
        if malformed:
            return self._error(ref, f"registry {ref.registry} sent a malformed HTTP answer at {origin} for {ref} "
                                    f"({_reason(malformed)}); headers are read up to 64 KiB a line and 100 lines")
        return self._error(ref, f"registry {ref.registry} could not be reached at {origin}{http_too} for {ref} "
                                f"({_reason(causes)}); it may answer later", temporary=True)


def _quiet_resolve(auth: Any, key: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # docker-py warns when a helper is missing; we raise instead
        return auth.resolve_authconfig(key)


def client_for(desired: DesiredState, **options: Any) -> RegistryClient:
    """The client for one pass over ``desired``: its Registry manifests' credentials, then the docker config."""
    declared = {
        spec.server: Credentials(username=spec.username, password=spec.password,
                                 origin=f"Registry {spec.name!r}" + (f" ({spec.source})" if spec.source else ""))
        for spec in desired.registries
    }
    return RegistryClient(declared, **options)


# --- helpers ---------------------------------------------------------------------------------------------------

_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)")
_PARAM = re.compile(r"""\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)""")


def parse_challenges(header: str) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` challenges by lowercase scheme: ``Bearer realm="...",service="..."`` and the like."""
    challenges: dict[str, dict[str, str]] = {}
    pos = 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(header, pos)
            if param is None:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(param.group(1).lower(), value)
            pos = param.end()
        challenges.setdefault(scheme.group(1).lower(), params)
        while pos < len(header) and header[pos] in ", ":
            pos += 1
    return challenges


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port): where Docker allows plain http."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """An exception and what it wraps (requests -> urllib3 -> socket/ssl), outermost first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _untrusted_certificate(exc: BaseException) -> str | None:
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or "certificate verify failed"
    return None


def _reason(causes: Sequence[BaseException]) -> str:
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
    inner = causes[-1] if causes else None
    text = f"{type(inner).__name__}: {inner}" if inner is not None else "unknown error"
    return text if len(text) <= 200 else text[:200] + "..."


__all__ = ["DOCKER_HUB", "MANIFEST_TYPES", "Credentials", "RegistryClient", "RegistryError", "client_for",
           "is_loopback", "parse_challenges"]
