// Browser access to the local S3 (s3s-fs answers no CORS preflight; real S3 and MinIO do, from
// the bucket's CORS rules). Forwards every request unchanged, Host included, so presigned
// SigV4 URLs made for this address verify upstream, and answers preflights itself.
//
//   node scripts/s3_cors.mjs LISTEN_PORT UPSTREAM_PORT [ORIGINS]
//
// ORIGINS: comma-separated browser origins allowed (default "*": uploads are authorised by the
// presigned signature, not by the origin).
import http from "node:http";

const [listenPort, upstreamPort, originList = "*"] = process.argv.slice(2);
if (!listenPort || !upstreamPort) {
  console.error("usage: node scripts/s3_cors.mjs LISTEN_PORT UPSTREAM_PORT [ORIGINS]");
  process.exit(2);
}
const origins = originList.split(",").map((o) => o.trim()).filter(Boolean);

function corsHeaders(origin) {
  if (!origin || !(origins.includes("*") || origins.includes(origin))) return null;
  return { "access-control-allow-origin": origin, "access-control-expose-headers": "etag", vary: "Origin" };
}

const server = http.createServer((request, response) => {
  const cors = corsHeaders(request.headers.origin);
  if (request.method === "OPTIONS" && request.headers["access-control-request-method"]) {
    response.writeHead(cors ? 204 : 403, {
      ...cors,
      "access-control-allow-methods": "GET, HEAD, PUT",
      "access-control-allow-headers": request.headers["access-control-request-headers"] ?? "",
      "access-control-max-age": "600",
    });
    response.end();
    return;
  }
  const upstream = http.request(
    { host: "127.0.0.1", port: upstreamPort, method: request.method, path: request.url, headers: request.headers },
    (answer) => {
      response.writeHead(answer.statusCode, { ...answer.headers, ...cors });
      answer.pipe(response);
    },
  );
  upstream.on("error", (error) => {
    console.error(`upstream: ${error.message}`);
    if (!response.headersSent) response.writeHead(502);
    response.end();
  });
  request.pipe(upstream);
});
server.listen(Number(listenPort), "127.0.0.1", () => {
  console.log(`s3 cors: 127.0.0.1:${listenPort} -> 127.0.0.1:${upstreamPort} (origins ${origins.join(",")})`);
});
