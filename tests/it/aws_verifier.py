"""A fake AWS endpoint for the integration tests: it recomputes every request's SigV4 signature
with botocore and the *real* key, answers 403 SignatureDoesNotMatch on any mismatch, and logs
one JSON line per request. It serves just enough S3, STS and Bedrock Runtime for boto3."""
import json, re, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

port, cert, key, akid, secret, log_path = sys.argv[1:7]
token = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] else None
objects = {}
lock = threading.Lock()
AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                  r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def log(entry):
    with lock, open(log_path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def verify(method, host, target, headers, body):
    m = AUTH.match(headers.get("Authorization", ""))
    if not m:
        return False, "not a SigV4 Authorization header", None
    got_akid, _date, region, service, signed, signature = m.groups()
    if got_akid != akid:
        return False, "signed with access key " + got_akid, service
    names = signed.split(";")
    hdrs = {k: v for k, v in headers.items() if k.lower() in names}
    req = AWSRequest(method=method, url="https://" + host + target, data=body, headers=hdrs)
    req.context["timestamp"] = headers["X-Amz-Date"]
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(Credentials(akid, secret, token), service, region)
    creq = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, creq), req)
    if token and headers.get("X-Amz-Security-Token") != token:
        return False, "session token missing", service
    return expected == signature, creq, service


def decode_aws_chunked(data):
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def reply(self, status, body=b"", ctype="application/xml", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        body = self.read_body()
        host = self.headers.get("Host", "")
        ok, detail, service = verify(self.command, host, self.path, self.headers, body)
        scope = AUTH.match(self.headers.get("Authorization", ""))
        log({"method": self.command, "host": host, "path": self.path, "ok": ok, "service": service,
             "region": scope.group(3) if scope else None,
             "detail": detail, "content_sha256": self.headers.get("X-Amz-Content-SHA256")})
        if not ok:
            return self.reply(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if service == "s3":
            key = host + self.path.split("?")[0]
            if self.command == "PUT":
                data = body
                if "aws-chunked" in self.headers.get("Content-Encoding", ""):
                    data = decode_aws_chunked(body)
                objects[key] = data
                return self.reply(200, b"", extra={"ETag": '"etag-1"'})
            if self.command == "GET" and key in objects:
                return self.reply(200, objects[key], "application/octet-stream", {"ETag": '"etag-1"'})
            return self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
        if service == "sts":
            xml = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                   b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/aivault</Arn>"
                   b"<UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                   b"<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>")
            return self.reply(200, xml, "text/xml")
        return self.reply(200, json.dumps({"completion": "signed correctly"}).encode(), "application/json")

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
