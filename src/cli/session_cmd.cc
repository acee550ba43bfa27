// `cloister session create|update|show|list|history|delete|verify|attestations|volumes`: sessions
// in the CAS, and offline validation of a session document.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cas_conn.h"
#include "cli/cli.h"
#include "policy/policy.h"

namespace cloister::cli {
namespace {

using nlohmann::json;

struct SessionArgs {
  CasConnArgs conn;
  std::string file;
  std::string name;
  int limit = 20;
};

StatusOr<std::string> ReadDocument(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.size() > policy::kMaxDocumentSize) {
    return ResourceExhausted(path + " is larger than " + std::to_string(policy::kMaxDocumentSize) + " bytes");
  }
  return text;
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

Status Write(const SessionArgs& a, bool create) {
  ASSIGN_OR_RETURN(std::string doc, ReadDocument(a.file));
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  json body = {{"document", doc}};
  StatusOr<net::HttpResponse> r = Status();
  if (create) {
    r = client->Post("/v1/sessions", body.dump());
  } else {
    // The URL names the session the document says it is; the CAS checks both agree.
    policy::ParseResult p = policy::Parse(doc);
    std::string name = p.policy ? p.policy->name : "";
    if (name.empty()) {
      for (const auto& e : p.errors) {
        PrintProblem(a.file, e.line, e.column, e.path, e.message);
      }
      return InvalidArgument(a.file + " is not a valid session document");
    }
    r = client->Put("/v1/sessions/" + net::EncodePathSegment(name), body.dump());
  }
  ASSIGN_OR_RETURN(json j, ApiResult(r, a.file));
  if (a.conn.json) {
    PrintJson(j);
  } else {
    std::printf("%s session %s: version %llu, hash %s\n", create ? "created" : "updated",
                j.value("name", "").c_str(), static_cast<unsigned long long>(j.value("version", 0ull)),
                j.value("hash", "").c_str());
    const json& gen = j.contains("generated") ? j["generated"] : json::array();
    if (!gen.empty()) {
      std::string names;
      for (const auto& g : gen) names += (names.empty() ? "" : ", ") + g.get<std::string>();
      std::printf("secrets generated: %s\n", names.c_str());
    }
  }
  return Status::Ok();
}

Status Create(const SessionArgs& a) { return Write(a, true); }
Status Update(const SessionArgs& a) { return Write(a, false); }

Status Show(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/sessions/" + net::EncodePathSegment(a.name))));
  if (a.conn.json) {
    PrintJson(j);
    return Status::Ok();
  }
  std::printf("name:       %s\nversion:    %llu\nhash:       %s\ncreator:    %s\ncreated:    %s\nupdated:    %s by %s\n",
              j.value("name", "").c_str(), static_cast<unsigned long long>(j.value("version", 0ull)),
              j.value("hash", "").c_str(), j.value("creator", "").c_str(), j.value("created", "").c_str(),
              j.value("updated", "").c_str(), j.value("updated_by", "").c_str());
  std::printf("secrets:   ");
  if (j.contains("secrets") && !j["secrets"].empty()) {
    for (const auto& s : j["secrets"]) {
      std::printf(" %s (%s)", s.value("name", "").c_str(), s.value("kind", "").c_str());
    }
  } else {
    std::printf(" none");
  }
  std::printf("\n---\n%s", j.value("document", "").c_str());
  return Status::Ok();
}

Status List(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/sessions")));
  if (a.conn.json) {
    PrintJson(j);
    return Status::Ok();
  }
  std::printf("%-40s %7s  %-16s  %s\n", "NAME", "VERSION", "HASH", "UPDATED");
  for (const auto& s : j.value("sessions", json::array())) {
    std::printf("%-40s %7llu  %-16.16s  %s\n", s.value("name", "").c_str(),
                static_cast<unsigned long long>(s.value("version", 0ull)), s.value("hash", "").c_str(),
                s.value("updated", "").c_str());
  }
  return Status::Ok();
}

Status History(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/history/" + net::EncodePathSegment(a.name))));
  if (a.conn.json) {
    PrintJson(j);
    return Status::Ok();
  }
  std::printf("%7s  %-64s  %-20s  %s\n", "VERSION", "HASH", "TIME", "AUTHOR");
  for (const auto& v : j.value("versions", json::array())) {
    std::printf("%7llu  %-64s  %-20s  %s\n", static_cast<unsigned long long>(v.value("version", 0ull)),
                v.value("hash", "").c_str(), v.value("time", "").c_str(), v.value("author", "").c_str());
  }
  return Status::Ok();
}

Status Delete(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Delete("/v1/sessions/" + net::EncodePathSegment(a.name))));
  if (a.conn.json) {
    PrintJson(j);
  } else {
    std::printf("deleted session %s\n", a.name.c_str());
  }
  return Status::Ok();
}

// The latest starts of a session's services, newest first: the verdict,
// the evidence type (never shown as anything but what it is) and why.
Status Attestations(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/attestations/" + net::EncodePathSegment(a.name) +
                                                 "?limit=" + std::to_string(a.limit))));
  if (a.conn.json) {
    PrintJson(j);
    return Status::Ok();
  }
  const json& list = j["attestations"];
  if (list.empty()) {
    std::printf("no attestations recorded for session %s\n", a.name.c_str());
    return Status::Ok();
  }
  std::printf("%-20s  %-16s  %-7s  %-8s  %-16s  %-7s  %s\n", "TIME", "SERVICE", "RESULT", "EVIDENCE", "NODE", "PID",
              "REASON");
  for (const json& r : list) {
    std::string node = r.value("node_name", "");
    if (node.empty()) node = r.value("node_id", "").substr(0, 16);
    std::string evidence = r.value("evidence", "");
    bool granted = r.value("granted", false);
    // A grant of hardware evidence names what the session tolerated in it.
    std::string why = granted ? r.value("detail", "") : r.value("reason", "") + ": " + r.value("detail", "");
    std::printf("%-20s  %-16s  %-7s  %-8s  %-16s  %-7u  %s\n", r.value("time", "").c_str(),
                r.value("service", "").c_str(), granted ? "granted" : "refused", evidence.empty() ? "-" : evidence.c_str(),
                node.empty() ? "-" : node.c_str(), r.value("pid", 0u), why.c_str());
  }
  // The honesty rule: say what sim evidence is worth wherever it appears.
  for (const json& r : list) {
    if (r.value("evidence", "") == "sim") {
      std::printf("note: sim evidence proves the program's identity to the CAS but gives no protection in use "
                  "(root on the node can read its memory)\n");
      break;
    }
  }
  return Status::Ok();
}

// The state the CAS keeps of each volume of a session: the latest commit
// its service reported (seq, tag, time), which the next start must find.
// Volume keys never leave the CAS this way.
Status Volumes(const SessionArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/sessions/" + net::EncodePathSegment(a.name))));
  json volumes = j.value("volumes", json::array());
  if (a.conn.json) {
    PrintJson({{"name", j.value("name", a.name)}, {"volumes", volumes}});
    return Status::Ok();
  }
  if (volumes.empty()) {
    std::printf("session %s has no volumes\n", a.name.c_str());
    return Status::Ok();
  }
  std::printf("%-24s  %8s  %-64s  %-20s  %s\n", "VOLUME", "SEQ", "TAG", "COMMITTED", "KEY MADE");
  for (const json& v : volumes) {
    const json& seq = v.contains("seq") ? v["seq"] : json(nullptr);
    std::string seq_text = seq.is_number_unsigned() ? std::to_string(seq.get<uint64_t>()) : "-";
    std::string tag = v.value("tag", "");
    std::string committed = v.value("committed", "");
    std::printf("%-24s  %8s  %-64s  %-20s  %s\n", v.value("name", "").c_str(), seq_text.c_str(),
                tag.empty() ? "-" : tag.c_str(), committed.empty() ? "-" : committed.c_str(),
                v.value("created", "").c_str());
  }
  return Status::Ok();
}

// Offline: the same parser and checks the CAS runs at upload, except the
// ones that need other sessions (imports are checked for shape only).
Status Verify(const SessionArgs& a) {
  ASSIGN_OR_RETURN(std::string doc, ReadDocument(a.file));
  policy::ParseResult p = policy::Parse(doc);
  if (!p.policy) {
    if (a.conn.json) {
      json list = json::array();
      for (const auto& e : p.errors) {
        list.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
      }
      PrintJson({{"valid", false}, {"problems", list}});
    } else {
      for (const auto& e : p.errors) {
        PrintProblem(a.file, e.line, e.column, e.path, e.message);
      }
    }
    return InvalidArgument(a.file + ": " + std::to_string(p.errors.size()) + " problem" +
                           (p.errors.size() == 1 ? "" : "s"));
  }
  std::string hash = policy::DocumentHash(doc);
  if (a.conn.json) {
    PrintJson({{"valid", true}, {"name", p.policy->name}, {"hash", hash}});
  } else {
    std::printf("%s: valid session %s (hash %s)\n", a.file.c_str(), p.policy->name.c_str(), hash.c_str());
  }
  return Status::Ok();
}

}  // namespace

void RegisterSessionCommands(CLI::App& app, int* exit_code) {
  enum Arg { kFile, kName, kNone };
  struct Sub {
    const char* name;
    const char* help;
    Arg arg;
    Status (*run)(const SessionArgs&);
  };
  static constexpr Sub kSubs[] = {
      {"create", "Upload a new session document", kFile, Create},
      {"update", "Upload a new version (the document names the current hash as predecessor)", kFile, Update},
      {"show", "Show a session: metadata, secret names and the document (secret values never)", kName, Show},
      {"list", "List the sessions this identity may read", kNone, List},
      {"history", "Every version of a session with hash, time and author", kName, History},
      {"delete", "Delete a session and its secrets", kName, Delete},
      {"verify", "Validate a session document offline (no CAS needed)", kFile, Verify},
      {"attestations", "The latest starts of the session's services: verdict, evidence type, node, reason", kName,
       Attestations},
      {"volumes", "The latest commit the CAS recorded of each volume: seq, tag and time (keys never)", kName,
       Volumes},
  };
  for (const Sub& s : kSubs) {
    auto args = std::make_shared<SessionArgs>();
    CLI::App* c = app.add_subcommand(s.name, s.help);
    if (s.arg == kFile) c->add_option("-f,--file", args->file, "Session document (YAML)")->required();
    if (s.arg == kName) c->add_option("name", args->name, "Session name")->required();
    if (std::string(s.name) == "attestations") {
      c->add_option("--limit", args->limit, "How many, newest first")->capture_default_str()->check(CLI::Range(1, 1024));
    }
    if (std::string(s.name) == "verify") {
      c->add_flag("--json", args->conn.json, "Machine-readable output");
    } else {
      AddCasConnOptions(*c, args->conn);
    }
    auto run = s.run;
    std::string context = std::string("session ") + s.name;
    c->callback([args, run, exit_code, context]() {
      Status st = run(*args);
      if (!st.ok()) *exit_code = Fail(context, st);
    });
  }
}

}  // namespace cloister::cli
