#include "cas/http_api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "attest/evidence.h"
#include "attest/relay_reply.h"
#include "attest/volume_commit.h"
#include "crypto/certificate.h"
#include "crypto/hpke.h"
#include "base/bytes.h"
#include "net/http_client.h"

namespace cloister::cas {
namespace {

using nlohmann::json;
using httplib::Request;
using httplib::Response;

int HttpStatusFor(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kStale: return 409;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

void Reply(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void ReplyError(Response& res, const Status& s, const std::vector<policy::PolicyError>* problems = nullptr) {
  json body = {{"error", s.message()}, {"code", std::string(StatusCodeName(s.code()))}};
  if (problems != nullptr && !problems->empty()) {
    json list = json::array();
    for (const policy::PolicyError& e : *problems) {
      list.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
    }
    body["problems"] = std::move(list);
  }
  Reply(res, HttpStatusFor(s.code()), body);
}

// The JSON object of a request body, or a 400 already written.
std::optional<json> BodyObject(const Request& req, Response& res) {
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ReplyError(res, InvalidArgument("the request body is not valid JSON"));
    return std::nullopt;
  }
  if (!j.is_object()) {
    ReplyError(res, InvalidArgument("the request body must be a JSON object"));
    return std::nullopt;
  }
  return j;
}

// A string member of a request object, or a 400 already written.
std::optional<std::string> StringField(const json& j, const char* name, Response& res) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    ReplyError(res, InvalidArgument(std::string("the request needs a string field \"") + name + "\""));
    return std::nullopt;
  }
  return it->get<std::string>();
}

// What a started program receives (docs/protocol.md section 5): holds
// every secret of the grant, so callers wipe its text after use.
json GrantJson(const GrantedConfig& g) {
  json env = json::object();
  for (const auto& [k, v] : g.environment) {
    auto b = v.UnsafeBytes();
    env[k] = std::string(b.begin(), b.end());
  }
  json files = json::array();
  for (const GrantedConfig::File& f : g.files) {
    files.push_back({{"path", f.path}, {"mode", f.mode}, {"content", Base64Encode(f.content.UnsafeBytes())}});
  }
  json volumes = json::array();
  for (const GrantedConfig::Volume& v : g.volumes) {
    volumes.push_back({{"name", v.name}, {"path", v.path}, {"key", HexEncode(v.key.UnsafeBytes())}, {"tag", v.tag},
                       {"update_policy", v.update_policy}});
  }
  json grant = {{"evidence", g.evidence}, {"session", g.session}, {"session_hash", g.session_hash},
                {"service", g.service},   {"command", g.command}, {"environment", env},
                {"pwd", g.pwd},           {"files", files},       {"volumes", volumes}};
  if (!g.volume_token.empty()) grant["volume_token"] = Base64Encode(g.volume_token);
  return grant;
}

json RefusalJson(const Status& s, const std::string& reason, const std::string& evidence) {
  json body = {{"error", s.message()}, {"reason", reason}, {"code", std::string(StatusCodeName(s.code()))}};
  if (!evidence.empty()) body["evidence"] = evidence;
  return body;
}

std::string RouteOf(const std::string& path) {
  static const char* kExact[] = {"/healthz",      "/readyz",        "/metrics",         "/v1/cas",
                                 "/v1/init",      "/v1/unseal",     "/v1/sessions",     "/v1/join-tokens",
                                 "/v1/nodes",     "/v1/nodes/join", "/v1/nodes/renew",  "/v1/nodes/challenge",
                                 "/v1/attest",
                                 "/v1/attest/relay", "/v1/attest/relay/batch", "/v1/volumes/commit",
                                 "/v1/collateral"};
  for (const char* p : kExact) {
    if (path == p) return p;
  }
  if (path.rfind("/v1/sessions/", 0) == 0) return "/v1/sessions/{name}";
  if (path.rfind("/v1/history/", 0) == 0) return "/v1/history/{name}";
  if (path.rfind("/v1/attestations/", 0) == 0) return "/v1/attestations/{name}";
  if (path.rfind("/v1/nodes/", 0) == 0) return "/v1/nodes/{id}/revoke";
  return "other";
}

// Per request, set before routing on the thread that serves it (httplib
// serves one request of a connection at a time on one thread) and cleared
// when it is logged: when it started and who the caller is.
thread_local std::chrono::steady_clock::time_point request_start;
thread_local std::optional<std::string> request_identity;

// Marks the start of a request on the thread that serves it.
void BeginRequest(const Request& req) {
  request_start = std::chrono::steady_clock::now();
  request_identity = net::PeerIdentity(req.ssl);
}

// The caller of a session route; the pre-routing handler has already
// turned away requests without one.
const std::string& Caller() { return *request_identity; }

json SealJson(const SealStatus& s) {
  json j = {{"state", std::string(SealStateName(s.state))}};
  if (s.state != SealState::kUninitialized) {
    j["unseal_mode"] = s.mode == UnsealMode::kShares ? "shares" : "key-file";
    if (s.mode == UnsealMode::kShares) {
      j["shares"] = s.shares;
      j["threshold"] = s.threshold;
      j["progress"] = s.progress;
    }
  }
  return j;
}

Status Bind(httplib::SSLServer& server, const std::string& addr, int* port) {
  ASSIGN_OR_RETURN(net::HostPort hp, net::ParseHostPort(addr));
  // httplib listens with a backlog of 5: when many clients connect at once
  // the kernel drops the rest and they retry a second later. Keep the
  // socket to listen again with the system's maximum.
  auto fd = std::make_shared<int>(-1);
  server.set_socket_options([fd](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *fd = sock;
  });
  if (hp.port == 0) {
    *port = server.bind_to_any_port(hp.host);
    if (*port <= 0) return IoError("cannot listen on " + addr);
  } else {
    if (!server.bind_to_port(hp.host, hp.port)) {
      return IoError("cannot listen on " + addr + " (in use, or not an address of this host)");
    }
    *port = hp.port;
  }
  if (*fd >= 0) ::listen(*fd, SOMAXCONN);
  return Status::Ok();
}

}  // namespace

CasServer::CasServer(CasService& service, std::string key_hash, ServerOptions options)
    : service_(service), key_hash_(std::move(key_hash)), options_(std::move(options)) {}

CasServer::~CasServer() { Stop(); }

StatusOr<std::unique_ptr<CasServer>> CasServer::New(CasService& service, const net::TlsIdentity& identity,
                                                    std::string key_hash, ServerOptions options) {
  std::unique_ptr<CasServer> s(new CasServer(service, std::move(key_hash), std::move(options)));
  Status tls;
  auto setup = [&identity, &tls](SSL_CTX& ctx) {
    tls = net::ConfigureServerContext(ctx, identity);
    return tls.ok();
  };
  s->api_ = std::make_unique<httplib::SSLServer>(setup);
  if (!s->api_->is_valid()) return tls.ok() ? InternalError("cannot set up TLS for the API") : tls;
  // No client of the attestation endpoint ever resumes a session (each
  // start has a fresh key), so it sends no session tickets: OpenSSL would
  // otherwise encode the session, client certificate included, twice per
  // connection.
  auto attest_setup = [&identity, &tls](SSL_CTX& ctx) {
    tls = net::ConfigureServerContext(ctx, identity);
    SSL_CTX_set_num_tickets(&ctx, 0);
    return tls.ok();
  };
  s->attest_ = std::make_unique<httplib::SSLServer>(attest_setup);
  if (!s->attest_->is_valid()) return tls.ok() ? InternalError("cannot set up TLS for the attestation endpoint") : tls;
  for (httplib::SSLServer* srv : {s->api_.get(), s->attest_.get()}) {
    int threads = s->options_.threads;
    srv->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    srv->set_read_timeout(s->options_.read_timeout_seconds, 0);
    srv->set_write_timeout(s->options_.read_timeout_seconds, 0);
    srv->set_keep_alive_timeout(10);
    srv->set_keep_alive_max_count(1000000);
    srv->set_payload_max_length(2 * policy::kMaxDocumentSize);
    srv->set_tcp_nodelay(true);
  }
  ASSIGN_OR_RETURN(s->signer_, crypto::P256Signer::New(identity.private_key_pem));
  ASSIGN_OR_RETURN(s->spki_, crypto::PublicKeyDerOfCertificate(identity.certificate_pem));
  s->Routes();
  return s;
}

void CasServer::Routes() {
  httplib::SSLServer& api = *api_;
  CasService& svc = service_;

  // Every request: time it, and turn away what the state or the caller's
  // missing identity does not allow before any handler runs.
  api.set_pre_routing_handler([&svc](const Request& req, Response& res) {
    BeginRequest(req);
    bool session_api = req.path.rfind("/v1/sessions", 0) == 0 || req.path.rfind("/v1/history/", 0) == 0 ||
                       req.path.rfind("/v1/attestations/", 0) == 0 || req.path.rfind("/v1/nodes", 0) == 0 ||
                       req.path == "/v1/join-tokens" || req.path.rfind("/v1/attest/relay", 0) == 0 ||
                       req.path == "/v1/volumes/commit" || req.path == "/v1/collateral";
    if (!session_api) return httplib::Server::HandlerResponse::Unhandled;
    if (!request_identity) {
      ReplyError(res, Unauthenticated("a client certificate is required (create an identity with "
                                      "`cloister identity create` and pass --identity)"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (svc.GetSealStatus().state != SealState::kUnsealed) {
      ReplyError(res, Unavailable("the CAS is sealed: unseal it with `cloister cas unseal`"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Both listeners: metrics and the request log, one error body shape.
  for (auto [srv, prefix] : {std::pair<httplib::SSLServer*, std::string>{api_.get(), ""},
                             std::pair<httplib::SSLServer*, std::string>{attest_.get(), "attest:"}}) {
    if (srv != api_.get()) {
      srv->set_pre_routing_handler([](const Request& req, Response&) {
        BeginRequest(req);
        return httplib::Server::HandlerResponse::Unhandled;
      });
    }
    srv->set_logger([this, prefix](const Request& req, const Response& res) {
      // Requests refused before routing (malformed request lines) never set
      // a start time: they count with zero latency, not the previous one's.
      double secs = request_start == std::chrono::steady_clock::time_point()
                        ? 0
                        : std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start).count();
      request_start = {};
      std::optional<std::string> id = std::move(request_identity);
      request_identity.reset();
      std::string route = prefix + RouteOf(req.path);
      metrics_.Observe(route, req.method, res.status, secs);
      if (options_.log_requests) {
        // The route pattern, never the path or a body: names and documents
        // are tenant data.
        std::fprintf(stderr, "cloister-cas: %s %s %d %.2fms identity=%s\n", req.method.c_str(), route.c_str(),
                     res.status, secs * 1e3, id ? id->substr(0, 16).c_str() : "-");
      }
    });
    srv->set_exception_handler([](const Request&, Response& res, std::exception_ptr) {
      ReplyError(res, InternalError("the request could not be handled"));
    });
    srv->set_error_handler([](const Request&, Response& res) {
      if (!res.body.empty()) return;
      int status = res.status;
      if (status == 413) {
        ReplyError(res, ResourceExhausted("the request body is larger than the CAS accepts"));
      } else if (status == 404) {
        ReplyError(res, NotFound("no such API route"));
      } else {
        ReplyError(res, InvalidArgument("the request was refused (HTTP " + std::to_string(status) + ")"));
      }
      res.status = status;
    });
  }

  auto health = [&svc](const Request&, Response& res) {
    Reply(res, 200, {{"status", "ok"}, {"state", std::string(SealStateName(svc.GetSealStatus().state))}});
  };
  auto cas_info = [this, &svc](const Request&, Response& res) {
    json j = SealJson(svc.GetSealStatus());
    j["key_hash"] = key_hash_;
    j["version"] = "0.1.0";
    Reply(res, 200, j);
  };
  api.Get("/healthz", health);
  api.Get("/v1/cas", cas_info);
  api.Get("/readyz", [&svc](const Request&, Response& res) {
    SealStatus s = svc.GetSealStatus();
    Reply(res, s.state == SealState::kUnsealed ? 200 : 503, SealJson(s));
  });
  api.Get("/metrics", [this, &svc](const Request&, Response& res) {
    SealStatus s = svc.GetSealStatus();
    char buf[1024];
    std::snprintf(buf, sizeof(buf),
                  "# HELP cloister_cas_sessions Sessions stored.\n# TYPE cloister_cas_sessions gauge\n"
                  "cloister_cas_sessions %lld\n"
                  "# HELP cloister_cas_store_bytes Bytes of the database files.\n# TYPE cloister_cas_store_bytes gauge\n"
                  "cloister_cas_store_bytes %lld\n"
                  "# HELP cloister_cas_sealed 1 while the CAS is sealed or uninitialized.\n# TYPE cloister_cas_sealed gauge\n"
                  "cloister_cas_sealed %d\n",
                  static_cast<long long>(svc.SessionCount()), static_cast<long long>(svc.StoreBytes()),
                  s.state == SealState::kUnsealed ? 0 : 1);
    std::string extra = buf;
    extra += "# HELP cloister_cas_nodes Nodes that joined (revoked ones included).\n# TYPE cloister_cas_nodes gauge\n";
    extra += "cloister_cas_nodes " + std::to_string(svc.NodeCount()) + "\n";
    extra +=
        "# HELP cloister_cas_attestations_total Starts of protected programs, by evidence type, result and reason.\n"
        "# TYPE cloister_cas_attestations_total counter\n";
    for (const auto& [k, n] : svc.AttestationCounts()) {
      const auto& [evidence, result, reason] = k;
      extra += "cloister_cas_attestations_total{evidence=\"" + evidence + "\",result=\"" + result + "\",reason=\"" +
               reason + "\"} " + std::to_string(n) + "\n";
    }
    extra +=
        "# HELP cloister_cas_volume_commits_total Volume commit reports, by result (accepted, repeated, or the "
        "refusal's reason).\n"
        "# TYPE cloister_cas_volume_commits_total counter\n";
    for (const auto& [result, n] : svc.CommitCounts()) {
      extra += "cloister_cas_volume_commits_total{result=\"" + result + "\"} " + std::to_string(n) + "\n";
    }
    res.set_content(metrics_.Render(extra), "text/plain; version=0.0.4");
  });

  api.Post("/v1/init", [&svc](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto n = body->find("shares"), m = body->find("threshold");
    if (n == body->end() || m == body->end() || !n->is_number_integer() || !m->is_number_integer()) {
      return ReplyError(res, InvalidArgument("the request needs integer fields \"shares\" and \"threshold\""));
    }
    auto shares = svc.InitializeShares(n->get<int>(), m->get<int>());
    if (!shares.ok()) return ReplyError(res, shares.status());
    json list = json::array();
    for (const SecretBytes& s : *shares) {
      auto b = s.UnsafeBytes();
      list.push_back(std::string(b.begin(), b.end()));
    }
    Reply(res, 200, {{"shares", list}, {"threshold", m->get<int>()}, {"state", "sealed"}});
  });
  api.Post("/v1/unseal", [&svc](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto share = StringField(*body, "share", res);
    if (!share) return;
    SecretBytes s(reinterpret_cast<const uint8_t*>(share->data()), share->size());
    SecureZero(share->data(), share->size());
    auto st = svc.SubmitShare(s);
    if (!st.ok()) return ReplyError(res, st.status());
    Reply(res, 200, SealJson(*st));
  });

  auto write_reply = [](Response& res, const WriteResult& w, int ok_status) {
    if (!w.status.ok()) return ReplyError(res, w.status, &w.problems);
    Reply(res, ok_status, {{"name", w.name}, {"hash", w.hash}, {"version", w.version}, {"generated", w.generated}});
  };
  api.Post("/v1/sessions", [&svc, write_reply](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto doc = StringField(*body, "document", res);
    if (!doc) return;
    write_reply(res, svc.CreateSession(Caller(), *doc), 201);
  });
  api.Put(R"(/v1/sessions/(.+))", [&svc, write_reply](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto doc = StringField(*body, "document", res);
    if (!doc) return;
    write_reply(res, svc.UpdateSession(Caller(), req.matches[1].str(), *doc), 200);
  });
  api.Get("/v1/sessions", [&svc](const Request&, Response& res) {
    auto list = svc.ListSessions(Caller());
    if (!list.ok()) return ReplyError(res, list.status());
    json out = json::array();
    for (const SessionSummary& s : *list) {
      out.push_back({{"name", s.name}, {"hash", s.hash}, {"version", s.version}, {"updated", s.updated}});
    }
    Reply(res, 200, {{"sessions", out}});
  });
  api.Get(R"(/v1/sessions/(.+))", [&svc](const Request& req, Response& res) {
    auto s = svc.GetSession(Caller(), req.matches[1].str());
    if (!s.ok()) return ReplyError(res, s.status());
    json secrets = json::array();
    for (const SecretInfo& i : s->secrets) secrets.push_back({{"name", i.name}, {"kind", i.kind}, {"created", i.created}});
    json volumes = json::array();
    for (const VolumeInfo& v : s->volumes) {
      json j = {{"name", v.name}, {"created", v.created}, {"tag", v.tag}, {"committed", v.committed}};
      j["seq"] = v.seq ? json(*v.seq) : json(nullptr);
      volumes.push_back(std::move(j));
    }
    Reply(res, 200,
          {{"name", s->name}, {"hash", s->hash}, {"version", s->version}, {"creator", s->creator},
           {"created", s->created}, {"updated", s->updated}, {"updated_by", s->updated_by},
           {"document", s->document}, {"secrets", secrets}, {"volumes", volumes}});
  });
  api.Delete(R"(/v1/sessions/(.+))", [&svc](const Request& req, Response& res) {
    std::string name = req.matches[1].str();
    Status s = svc.DeleteSession(Caller(), name);
    if (!s.ok()) return ReplyError(res, s);
    Reply(res, 200, {{"deleted", name}});
  });
  api.Get(R"(/v1/history/(.+))", [&svc](const Request& req, Response& res) {
    auto h = svc.History(Caller(), req.matches[1].str());
    if (!h.ok()) return ReplyError(res, h.status());
    json out = json::array();
    for (const HistoryEntry& e : *h) {
      out.push_back({{"version", e.version}, {"hash", e.hash}, {"time", e.time}, {"author", e.author}});
    }
    Reply(res, 200, {{"name", req.matches[1].str()}, {"versions", out}});
  });

  api.Get(R"(/v1/attestations/(.+))", [&svc](const Request& req, Response& res) {
    size_t limit = 50;
    if (req.has_param("limit")) {
      const std::string v = req.get_param_value("limit");
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > 1024) {
        return ReplyError(res, InvalidArgument("limit must be 1..1024"));
      }
      limit = n;
    }
    auto list = svc.Attestations(Caller(), req.matches[1].str(), limit);
    if (!list.ok()) return ReplyError(res, list.status());
    json out = json::array();
    for (const AttestationRecord& r : *list) {
      json j = {{"time", r.time},         {"service", r.service},     {"granted", r.granted},
                {"evidence", r.evidence}, {"node_id", r.node_id},     {"node_name", r.node_name},
                {"pid", r.pid},           {"executable", r.executable}, {"runtime", r.runtime}};
      if (!r.granted) {
        j["reason"] = r.reason;
        j["detail"] = r.detail;
      } else {
        j["session_hash"] = r.session_hash;
        if (!r.detail.empty()) j["detail"] = r.detail;  // what the session tolerated
      }
      out.push_back(std::move(j));
    }
    Reply(res, 200, {{"name", req.matches[1].str()}, {"attestations", out}});
  });

  // Nodes (docs/protocol.md section 4).
  auto node_reply = [](Response& res, const StatusOr<NodeCertificate>& c) {
    if (!c.ok()) return ReplyError(res, c.status());
    Reply(res, 200, {{"node_id", c->node_id}, {"certificate", c->certificate_pem},
                     {"ca_certificate", c->ca_certificate_pem}, {"expires", c->expires_unix}});
  };
  api.Post("/v1/join-tokens", [&svc](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    int64_t ttl = 3600;
    if (auto it = body->find("ttl_seconds"); it != body->end()) {
      if (!it->is_number_integer()) return ReplyError(res, InvalidArgument("ttl_seconds must be an integer"));
      ttl = it->get<int64_t>();
    }
    auto t = svc.CreateJoinToken(Caller(), ttl);
    if (!t.ok()) return ReplyError(res, t.status());
    auto b = t->token.UnsafeBytes();
    std::string token(b.begin(), b.end());
    json j = {{"token", token}, {"expires", t->expires_unix}};
    SecureZero(token.data(), token.size());
    Reply(res, 201, j);
    j["token"] = "";
  });
  // Hardware evidence of a join or renewal (docs/protocol.md section 4.1):
  // absent, or parsed into `out`; false when a 400 was written.
  auto node_evidence = [](const json& body, Response& res, std::optional<NodeEvidence>& out) {
    auto it = body.find("evidence");
    if (it == body.end()) return true;
    auto parsed = ParseNodeEvidence(*it);
    if (!parsed.ok()) {
      ReplyError(res, parsed.status());
      return false;
    }
    out = std::move(*parsed);
    return true;
  };
  api.Post("/v1/nodes/challenge", [&svc](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto request = ParseNodeChallengeRequest(*body);
    if (!request.ok()) return ReplyError(res, request.status());
    auto c = svc.CreateNodeChallenge(Caller(), *request);
    if (!c.ok()) {
      // Too many open challenges of this node: 429, the node's own doing;
      // too many in all: 503, as when the CAS is sealed.
      if (c.status().code() == StatusCode::kResourceExhausted) {
        return Reply(res, 429, {{"error", c.status().message()}, {"code", "too-many-requests"}});
      }
      return ReplyError(res, c.status());
    }
    json j = {{"challenge", HexEncode(c->challenge)}, {"expires", c->expires_unix}};
    if (!c->credential_blob.empty()) {
      j["credential_blob"] = Base64Encode(c->credential_blob);
      j["encrypted_secret"] = Base64Encode(c->encrypted_secret);
    }
    Reply(res, 200, j);
  });
  api.Post("/v1/nodes/join", [&svc, node_reply, node_evidence](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto token = StringField(*body, "token", res);
    if (!token) return;
    auto name = StringField(*body, "name", res);
    if (!name) return;
    SecretBytes t(reinterpret_cast<const uint8_t*>(token->data()), token->size());
    SecureZero(token->data(), token->size());
    std::optional<NodeEvidence> evidence;
    if (!node_evidence(*body, res, evidence)) return;
    auto pem = net::PeerCertificatePem(req.ssl);
    node_reply(res, svc.JoinNode(Caller(), pem.value_or(""), t, *name, evidence ? &*evidence : nullptr));
  });
  api.Post("/v1/nodes/renew", [&svc, node_reply, node_evidence](const Request& req, Response& res) {
    // `{}` (or no body, as older nodes send) renews a node that joined
    // with a token alone.
    std::optional<NodeEvidence> evidence;
    if (!req.body.empty()) {
      auto body = BodyObject(req, res);
      if (!body) return;
      if (!node_evidence(*body, res, evidence)) return;
    }
    auto pem = net::PeerCertificatePem(req.ssl);
    node_reply(res, svc.RenewNode(Caller(), pem.value_or(""), evidence ? &*evidence : nullptr));
  });
  api.Get("/v1/nodes", [&svc](const Request&, Response& res) {
    auto list = svc.ListNodes(Caller());
    if (!list.ok()) return ReplyError(res, list.status());
    json out = json::array();
    for (const NodeInfo& n : *list) {
      json j = {{"id", n.id},           {"name", n.name}, {"joined", n.joined},   {"renewed", n.renewed},
                {"expires", n.expires_unix}, {"how", n.how},   {"revoked", n.revoked}, {"revoked_at", n.revoked_at}};
      if (!n.verdict_json.empty()) {
        // The verdict of the node's latest join or renewal with evidence.
        j["tcb_status"] = n.tcb_status;
        j["evidence"] = json::parse(n.verdict_json, nullptr, /*allow_exceptions=*/false);
      }
      out.push_back(std::move(j));
    }
    Reply(res, 200, {{"nodes", out}});
  });
  api.Post(R"(/v1/nodes/([0-9A-Fa-f]{64})/revoke)", [&svc](const Request& req, Response& res) {
    std::string id = req.matches[1].str();
    Status s = svc.RevokeNode(Caller(), id);
    if (!s.ok()) return ReplyError(res, s);
    Reply(res, 200, {{"revoked", id}});
  });

  // Collateral for hardware evidence (docs/cas.md): administrators import
  // files (each as its name and base64 content) and list what is held.
  api.Post("/v1/collateral", [&svc](const Request& req, Response& res) {
    auto body = BodyObject(req, res);
    if (!body) return;
    auto it = body->find("files");
    if (it == body->end() || !it->is_array()) {
      return ReplyError(res, InvalidArgument("files must be a list of {\"name\", \"content\"}"));
    }
    std::vector<attest::CollateralFile> files;
    for (const json& f : *it) {
      if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("content") ||
          !f["content"].is_string()) {
        return ReplyError(res, InvalidArgument("each file must be {\"name\": string, \"content\": base64}"));
      }
      auto bytes = Base64Decode(f["content"].get<std::string>());
      if (!bytes) return ReplyError(res, InvalidArgument(f["name"].get<std::string>() + ": content is not base64"));
      files.push_back({f["name"].get<std::string>(), std::move(*bytes)});
    }
    auto r = svc.ImportCollateral(Caller(), files);
    if (!r.ok()) return ReplyError(res, r.status());
    Reply(res, 200, {{"added", r->added}, {"unchanged", r->unchanged}, {"unrecognised", r->unrecognised}});
  });
  api.Get("/v1/collateral", [&svc](const Request&, Response& res) {
    auto list = svc.ListCollateral(Caller());
    if (!list.ok()) return ReplyError(res, list.status());
    json out = json::array();
    for (const CollateralEntry& e : *list) {
      out.push_back({{"kind", e.kind}, {"subject", e.subject}, {"source", e.source}, {"added", e.added},
                     {"next_update", e.next_update_unix}});
    }
    Reply(res, 200, {{"collateral", out}});
  });

  // The attestation endpoint (docs/protocol.md section 5): a starting
  // program presents its evidence over TLS with its fresh key as client
  // certificate and receives its configuration.
  attest_->Get("/healthz", health);
  attest_->Get("/v1/cas", cas_info);
  attest_->Post("/v1/attest", [&svc](const Request& req, Response& res) {
    auto refuse = [&res](const Status& s, const std::string& reason, const std::string& evidence) {
      Reply(res, HttpStatusFor(s.code()), RefusalJson(s, reason, evidence));
    };
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto config = body.is_object() ? body.find("config_id") : body.end();
    auto evidence = body.is_object() ? body.find("evidence") : body.end();
    if (!body.is_object() || config == body.end() || !config->is_string() || evidence == body.end() ||
        !evidence->is_string()) {
      return refuse(InvalidArgument("the request needs string fields config_id and evidence"), "bad-request", "");
    }
    auto raw = Base64Decode(evidence->get<std::string>());
    if (!raw || raw->size() > attest::kMaxEvidenceSize) {
      return refuse(InvalidArgument("evidence is not base64 of at most 64 KiB"), "bad-request", "");
    }
    std::optional<Bytes> key = request_identity ? HexDecode(*request_identity) : std::nullopt;
    if (!key || key->size() != 32) {
      return refuse(Unauthenticated("a client certificate (the key the evidence binds) is required"), "bad-request",
                    "");
    }
    std::array<uint8_t, 32> key_hash;
    std::copy(key->begin(), key->end(), key_hash.begin());
    AttestResult r = svc.Attest(config->get<std::string>(), *raw, key_hash);
    if (!r.status.ok()) return refuse(r.status, r.reason, r.evidence);
    res.status = 200;
    std::string text = GrantJson(*r.config).dump();
    res.set_content(text, "application/json");
    SecureZero(text.data(), text.size());
  });

  // Volume commits (docs/protocol.md section 7): a running program reports
  // a volume's new tag, directly on the attestation port or relayed by its
  // LAS on this one. The report proves itself (the CAS's token, the
  // program's signature); a relaying caller must be a node of this CAS.
  // A recorded commit is answered with a receipt signed by the CAS's key,
  // so that a program whose LAS carried the report knows the CAS, not the
  // LAS, recorded it.
  auto commit = [this, &svc](const Request& req, Response& res, const std::string* relaying_node) {
    CommitResult r = svc.CommitVolume(req.body, relaying_node);
    if (!r.status.ok()) return Reply(res, HttpStatusFor(r.status.code()), RefusalJson(r.status, r.reason, ""));
    auto receipt = signer_->Sign(r.receipt_message);
    volume_commit::Tag tag{};
    auto tag_bytes = HexDecode(r.tag);
    if (!receipt.ok() || !tag_bytes || tag_bytes->size() != tag.size()) {
      return ReplyError(res, InternalError("the commit was recorded but its receipt cannot be signed"));
    }
    std::copy(tag_bytes->begin(), tag_bytes->end(), tag.begin());
    res.status = 200;
    res.set_content(volume_commit::BuildReceipt(r.volume, r.seq, tag, spki_, *receipt), "application/json");
  };
  attest_->Post("/v1/volumes/commit", [commit](const Request& req, Response& res) { commit(req, res, nullptr); });
  api.Post("/v1/volumes/commit", [commit](const Request& req, Response& res) { commit(req, res, &Caller()); });

  // Relayed attestation (docs/protocol.md section 6): a LAS carries a
  // starting program's evidence and fresh public key over its own
  // long-lived connection. The evidence proves itself, as on the
  // attestation port; the caller needs only a TLS identity.
  api.Post("/v1/attest/relay", [this](const Request& req, Response& res) {
    std::vector<uint8_t> reply = RelayedReply(json::parse(req.body, nullptr, /*allow_exceptions=*/false));
    if (reply.empty()) {
      return ReplyError(res, InvalidArgument("a relayed attestation needs string fields config_id, evidence "
                                             "(base64, at most 64 KiB) and key (base64 of a 65-byte P-256 point)"));
    }
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(reply.data()), reply.size(), "application/octet-stream");
  });

  // The starts a LAS had waiting while its previous request was out, in one
  // request: one HTTP exchange for all of them, each answered as above.
  api.Post("/v1/attest/relay/batch", [this](const Request& req, Response& res) {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto starts = body.is_object() ? body.find("starts") : body.end();
    if (starts == body.end() || !starts->is_array() || starts->empty() || starts->size() > relay::kMaxBatch) {
      return ReplyError(res, InvalidArgument("a relayed batch needs an array starts of 1 to " +
                                             std::to_string(relay::kMaxBatch) + " relayed attestations"));
    }
    std::vector<std::vector<uint8_t>> replies;
    replies.reserve(starts->size());
    for (const json& start : *starts) replies.push_back(RelayedReply(start));
    std::vector<uint8_t> batch = relay::EncodeBatch(replies);
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(batch.data()), batch.size(), "application/octet-stream");
  });
}

std::vector<uint8_t> CasServer::RelayedReply(const json& body) {
  if (!body.is_object()) return {};
  auto config = body.find("config_id"), evidence = body.find("evidence"), key = body.find("key");
  if (config == body.end() || !config->is_string() || evidence == body.end() || !evidence->is_string() ||
      key == body.end() || !key->is_string()) {
    return {};
  }
  auto raw = Base64Decode(evidence->get<std::string>());
  auto point_bytes = Base64Decode(key->get<std::string>());
  if (!raw || raw->size() > attest::kMaxEvidenceSize || !point_bytes || point_bytes->size() != relay::kPointSize) {
    return {};
  }
  const std::string config_id = config->get<std::string>();
  relay::Point point;
  std::copy(point_bytes->begin(), point_bytes->end(), point.begin());
  relay::Hash report_data;
  if (!relay::ReportDataOfPoint(point, &report_data)) return {};

  AttestResult r = service_.Attest(config_id, *raw, report_data);
  uint16_t status = 200;
  Bytes payload;
  if (r.status.ok()) {
    std::string text = GrantJson(*r.config).dump();
    std::vector<uint8_t> enc, sealed;
    hpke::Error e = hpke::Seal(point, AsBytes(relay::kGrantInfo), AsBytes(config_id), AsBytes(text), &enc, &sealed);
    SecureZero(text.data(), text.size());
    if (e == hpke::Error::kNone) {
      payload = std::move(enc);
      payload.insert(payload.end(), sealed.begin(), sealed.end());
    } else {
      // The evidence was bound to this point, so the LAS signed for a key
      // that is not one: nothing can be sealed to it.
      r.status = InvalidArgument(std::string("cannot seal the grant to the program's key: ") + hpke::ErrorText(e));
      r.reason = "bad-request";
    }
  }
  if (!r.status.ok()) {
    status = static_cast<uint16_t>(HttpStatusFor(r.status.code()));
    std::string text = RefusalJson(r.status, r.reason, r.evidence).dump();
    payload.assign(text.begin(), text.end());
  }
  std::vector<uint8_t> unsigned_reply = relay::EncodeUnsigned(status, spki_, payload);
  auto signature = signer_->Sign(relay::SignedMessage(report_data, config_id, unsigned_reply));
  if (!signature.ok()) {
    std::fprintf(stderr, "cloister-cas: cannot sign a relayed reply: %s\n", signature.status().message().c_str());
    return {};
  }
  return relay::AppendSignature(std::move(unsigned_reply), *signature);
}

Status CasServer::Start() {
  RETURN_IF_ERROR(Bind(*api_, options_.api_listen, &api_port_));
  RETURN_IF_ERROR(Bind(*attest_, options_.attest_listen, &attest_port_));
  api_thread_ = std::thread([this] { api_->listen_after_bind(); });
  attest_thread_ = std::thread([this] { attest_->listen_after_bind(); });
  return Status::Ok();
}

void CasServer::Stop() {
  if (api_) api_->stop();
  if (attest_) attest_->stop();
  if (api_thread_.joinable()) api_thread_.join();
  if (attest_thread_.joinable()) attest_thread_.join();
}

}  // namespace cloister::cas
