#include "cas/service.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/clock.h"
#include "cas/attestation_log.h"
#include "cas/secrets.h"
#include "cas/service_internal.h"
#include "cas/volume_token.h"
#include "crypto/crypto.h"
#include "os/secret_file.h"

namespace cloister::cas {
namespace internal {

using nlohmann::json;

std::string Now() { return Rfc3339(UnixNow()); }

std::string SecretKey(const std::string& session, const std::string& secret) { return session + "\n" + secret; }

Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Record JSON is parsed from our own sealed store, so a parse failure means
// a bug or a record that authenticated but is not ours: an internal error.
StatusOr<json> ParseRecord(const Bytes& b, const char* what) {
  json j = json::parse(b.begin(), b.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InternalError(std::string("a stored ") + what + " record is not valid");
  return j;
}

bool Allowed(const std::vector<std::string>& who, const std::string& caller, const std::string& creator) {
  for (const std::string& w : who) {
    if (w == "ANY") return true;
    if (w == "NONE") return false;
    if (w == "CREATOR" && caller == creator) return true;
    if (w.size() == caller.size() && std::equal(w.begin(), w.end(), caller.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> AccessList(const json& rec, const char* which) {
  std::vector<std::string> out;
  if (!rec.contains("access") || !rec["access"].contains(which)) return out;  // nobody
  for (const json& w : rec["access"][which]) {
    if (w.is_string()) out.push_back(w.get<std::string>());
  }
  return out;
}

StatusOr<std::optional<Current>> LoadSession(Store& store, const std::string& name, bool parse) {
  ASSIGN_OR_RETURN(auto v, store.GetVersioned(kSessions, name));
  if (!v) return std::optional<Current>();
  Current c;
  ASSIGN_OR_RETURN(c.record, ParseRecord(v->value, "session"));
  c.revision = v->revision;
  if (!c.record.contains("document") || !c.record["document"].is_string()) {
    return InternalError("stored session " + name + " has no document");
  }
  if (!parse) return std::optional<Current>(std::move(c));
  policy::ParseResult p = policy::Parse(c.record["document"].get<std::string>());
  if (!p.policy) return InternalError("stored session " + name + " no longer parses");
  c.policy = std::move(*p.policy);
  return std::optional<Current>(std::move(c));
}

std::string CreatorOf(const json& rec) { return rec.value("creator", std::string()); }

StatusOr<std::optional<SecretValue>> LoadSecret(Store& store, const std::string& session, const std::string& secret) {
  ASSIGN_OR_RETURN(auto v, store.Get(kSecrets, SecretKey(session, secret)));
  if (!v) return std::optional<SecretValue>();
  auto decoded = DecodeSecretValue(*v);
  SecureZero(v->data(), v->size());
  if (!decoded.ok()) return decoded.status();
  return std::optional<SecretValue>(std::move(*decoded));
}

}  // namespace internal

namespace {

using nlohmann::json;
using namespace internal;  // NOLINT: this file is the home of the internal helpers

json AccessJson(const policy::AccessPolicy& a) {
  return json{{"read", a.read}, {"update", a.update}, {"delete", a.del}};
}

// The keyring file's bytes, or nullopt if there is none.
std::optional<Bytes> ReadKeyring(const std::string& state_dir) {
  std::ifstream in(state_dir + "/keyring", std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

std::string_view SealStateName(SealState s) {
  switch (s) {
    case SealState::kUninitialized: return "uninitialized";
    case SealState::kSealed: return "sealed";
    case SealState::kUnsealed: return "unsealed";
  }
  return "unknown";
}

CasService::CasService(std::string state_dir) : state_dir_(std::move(state_dir)) {}
CasService::~CasService() {
  // The store (and the attestation log writing to it) go before the lock.
  attestation_log_.reset();
  store_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

StatusOr<std::unique_ptr<CasService>> CasService::Open(const std::string& state_dir) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus("state directory " + state_dir, errno);
  struct stat st;
  if (::stat(state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument("state directory " + state_dir + " is not a directory");
  }
  std::unique_ptr<CasService> s(new CasService(state_dir));
  const std::string lock = state_dir + "/lock";
  s->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (s->lock_fd_ < 0) return ErrnoStatus(lock, errno);
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return FailedPrecondition("state directory " + state_dir + " is in use by another cloister-cas");
    }
    return ErrnoStatus("lock " + lock, errno);
  }
  if (auto file = ReadKeyring(state_dir)) {
    ASSIGN_OR_RETURN(KeyringInfo info, ParseKeyring(*file));
    s->seal_.state = SealState::kSealed;
    s->seal_.mode = info.mode;
    s->seal_.shares = info.shares;
    s->seal_.threshold = info.threshold;
  }
  return s;
}

SealStatus CasService::GetSealStatus() const {
  std::lock_guard<std::mutex> l(seal_mu_);
  SealStatus s = seal_;
  s.progress = static_cast<int>(entered_shares_.size());
  return s;
}

Status CasService::OpenStore(const SecretBytes& database_key) {
  ASSIGN_OR_RETURN(auto sqlite, OpenSqliteStore(state_dir_ + "/cas.db"));
  ASSIGN_OR_RETURN(auto enc, NewEncryptedStore(std::move(sqlite), database_key));
  // Counting sessions also proves the key: every record must open.
  ASSIGN_OR_RETURN(auto rows, enc->Scan(kSessions));
  session_count_ = static_cast<int64_t>(rows.size());
  // Every attestation reads its session record: those are kept decrypted
  // in memory (this process is the store's only writer, see lock_fd_).
  store_ = NewCachingStore(std::move(enc), {std::string(kSessions)}, kCachedSessions);
  RETURN_IF_ERROR(LoadNodeState());
  RETURN_IF_ERROR(LoadCollateral());
  ASSIGN_OR_RETURN(volume_token_key_, DeriveVolumeTokenKey(database_key));
  attestation_log_ = std::make_unique<AttestationLog>(store_);
  seal_.state = SealState::kUnsealed;
  unsealed_.store(true, std::memory_order_release);
  return Status::Ok();
}

StatusOr<std::vector<SecretBytes>> CasService::InitializeShares(int shares, int threshold) {
  std::lock_guard<std::mutex> l(seal_mu_);
  if (seal_.state != SealState::kUninitialized) return AlreadyExists("the CAS is already initialized");
  if (shares < 1 || shares > 255 || threshold < 1 || threshold > shares) {
    return InvalidArgument("need 1 <= threshold <= shares <= 255");
  }
  ASSIGN_OR_RETURN(NewKeyring k, CreateKeyring(UnsealMode::kShares, shares, threshold));
  RETURN_IF_ERROR(os::WriteNewSecretFile(state_dir_ + "/keyring", k.file));
  seal_ = SealStatus{SealState::kSealed, UnsealMode::kShares, shares, threshold, 0};
  return std::move(k.shares);
}

Status CasService::InitializeOrUnsealWithKey(const SecretBytes& master_key) {
  std::lock_guard<std::mutex> l(seal_mu_);
  if (seal_.state == SealState::kUnsealed) return Status::Ok();
  if (seal_.state == SealState::kUninitialized) {
    ASSIGN_OR_RETURN(NewKeyring k, CreateKeyring(UnsealMode::kKeyFile, 0, 0, &master_key));
    RETURN_IF_ERROR(os::WriteNewSecretFile(state_dir_ + "/keyring", k.file));
    seal_ = SealStatus{SealState::kSealed, UnsealMode::kKeyFile, 0, 0, 0};
  }
  if (seal_.mode != UnsealMode::kKeyFile) {
    return FailedPrecondition("this CAS is unsealed with key shares (`cloister cas unseal`), not a key file");
  }
  auto db = UnwrapDatabaseKey(ReadKeyring(state_dir_).value_or(Bytes()), master_key);
  if (!db.ok()) return IntegrityError("the unseal key file does not open this CAS's keyring");
  return OpenStore(*db);
}

StatusOr<SealStatus> CasService::SubmitShare(const SecretBytes& raw_share) {
  // The same share typed with other surrounding white space is the same share.
  auto raw = raw_share.UnsafeBytes();
  size_t b = 0, e = raw.size();
  while (b < e && std::isspace(raw[b])) ++b;
  while (e > b && std::isspace(raw[e - 1])) --e;
  SecretBytes share(raw.data() + b, e - b);
  std::lock_guard<std::mutex> l(seal_mu_);
  if (seal_.state == SealState::kUninitialized) return FailedPrecondition("the CAS is not initialized (`cloister cas init`)");
  if (seal_.state == SealState::kUnsealed) {
    SealStatus s = seal_;
    return s;
  }
  if (seal_.mode != UnsealMode::kShares) return FailedPrecondition("this CAS is unsealed with a key file, not shares");
  RETURN_IF_ERROR(CheckShare(share));
  for (const SecretBytes& e : entered_shares_) {
    if (e.Equals(share)) return AlreadyExists("this share was already entered");
  }
  entered_shares_.push_back(share);
  if (static_cast<int>(entered_shares_.size()) < seal_.threshold) {
    SealStatus s = seal_;
    s.progress = static_cast<int>(entered_shares_.size());
    return s;
  }
  std::vector<SecretBytes> shares = std::move(entered_shares_);
  entered_shares_.clear();
  auto master = CombineShares(shares, seal_.threshold);
  if (!master.ok()) return master.status();
  auto db = UnwrapDatabaseKey(ReadKeyring(state_dir_).value_or(Bytes()), *master);
  if (!db.ok()) {
    return InvalidArgument("the shares entered do not reconstruct the master key; enter " +
                          std::to_string(seal_.threshold) + " correct shares again");
  }
  RETURN_IF_ERROR(OpenStore(*db));
  SealStatus s = seal_;
  return s;
}

Status CasService::RequireUnsealed() const {
  if (unsealed_.load(std::memory_order_acquire)) return Status::Ok();
  return Unavailable("the CAS is sealed: unseal it with `cloister cas unseal`");
}

int64_t CasService::StoreBytes() const {
  int64_t total = 0;
  for (const char* f : {"/cas.db", "/cas.db-wal"}) {
    struct stat st;
    if (::stat((state_dir_ + f).c_str(), &st) == 0) total += st.st_size;
  }
  return total;
}

WriteResult CasService::CreateSession(const std::string& caller, const std::string& document) {
  return Write(caller, "", document, /*create=*/true);
}

WriteResult CasService::UpdateSession(const std::string& caller, const std::string& name, const std::string& document) {
  return Write(caller, name, document, /*create=*/false);
}

WriteResult CasService::Write(const std::string& caller, const std::string& url_name, const std::string& document,
                              bool create) {
  WriteResult r;
  auto fail = [&r](Status s) {
    r.status = std::move(s);
    return r;
  };
  auto problem = [&r](std::string path, std::string message) {
    r.problems.push_back(policy::PolicyError{std::move(path), 0, 0, std::move(message)});
    r.status = InvalidArgument("the session document was refused");
    return r;
  };
  if (Status s = RequireUnsealed(); !s.ok()) return fail(s);
  if (document.size() > policy::kMaxDocumentSize) {
    return fail(ResourceExhausted("the document is larger than " + std::to_string(policy::kMaxDocumentSize) + " bytes"));
  }
  policy::ParseResult parsed = policy::Parse(document);
  if (!parsed.policy) {
    r.problems = std::move(parsed.errors);
    r.status = InvalidArgument("the session document was refused");
    return r;
  }
  policy::Policy& p = *parsed.policy;
  r.name = p.name;
  if (!create && p.name != url_name) {
    return problem("name", "the document names session '" + p.name + "' but the update is for '" + url_name + "'");
  }
  Store& store = *store_;
  auto cur = LoadSession(store, p.name);
  if (!cur.ok()) return fail(cur.status());
  if (create) {
    if (*cur) return fail(AlreadyExists("session " + p.name + " exists; change it with `cloister session update`"));
    if (!p.predecessor.empty()) {
      return problem("predecessor", "session " + p.name + " does not exist yet: a new session has no predecessor");
    }
  } else {
    if (!*cur) return fail(NotFound("no session " + p.name));
    const Current& c = **cur;
    if (!Allowed(AccessList(c.record, "update"), caller, CreatorOf(c.record))) {
      return fail(PermissionDenied("identity " + caller + " may not update session " + p.name));
    }
    std::string current_hash = c.record.value("hash", std::string());
    if (p.predecessor.empty()) {
      return problem("predecessor", "an update must name the current version's hash as predecessor (" +
                                        current_hash + ")");
    }
    if (p.predecessor != current_hash) {
      return fail(StaleError("stale predecessor: session " + p.name + " is at " + current_hash +
                                     ", the document names " + p.predecessor));
    }
  }
  r.hash = policy::DocumentHash(document);

  // Imports: the exporting sessions must exist and export to this one.
  std::map<std::string, Current> exporters;
  policy::SessionLookup lookup = [&](const std::string& name) -> std::optional<policy::ExporterView> {
    auto it = exporters.find(name);
    if (it == exporters.end()) {
      auto e = LoadSession(store, name, /*parse=*/true);
      if (!e.ok() || !*e) return std::nullopt;
      it = exporters.emplace(name, std::move(**e)).first;
    }
    return policy::ExporterView{it->second.record.value("hash", std::string()), &it->second.policy};
  };
  std::vector<policy::PolicyError> import_errors = policy::CheckImports(p, r.hash, document, lookup);
  if (!import_errors.empty()) {
    r.problems = std::move(import_errors);
    r.status = InvalidArgument("the session document was refused");
    return r;
  }

  // Secrets: keep a value whose definition did not change, make the rest.
  auto order = GenerationOrder(p);
  if (!order.ok()) return problem("secrets", order.status().message());
  json old_secrets = (*cur) ? (*cur)->record.value("secrets", json::object()) : json::object();
  std::map<std::string, SecretValue> values;
  json new_secrets = json::object();
  std::vector<Store::Write> batch;
  SecretResolver resolve = [&values](const std::string& n) -> const SecretValue* {
    auto it = values.find(n);
    return it == values.end() ? nullptr : &it->second;
  };
  std::string now = Now();
  for (size_t i : *order) {
    const policy::Secret& spec = p.secrets[i];
    std::string path = "secrets[" + std::to_string(i) + "]";
    if (spec.kind == policy::SecretKind::kImported) {
      auto v = LoadSecret(store, spec.import->session, spec.import->secret);
      if (!v.ok()) return fail(v.status());
      if (!*v) return problem(path + ".import", "session " + spec.import->session + " has no value for secret " + spec.import->secret);
      values.emplace(spec.name, std::move(**v));
      new_secrets[spec.name] = json{{"kind", "import"}, {"created", now}};
      continue;
    }
    std::string fp = spec.Fingerprint();
    // A certificate whose key or issuer was just made again is made again
    // too, or its chain would no longer verify.
    bool dependency_changed =
        std::find(r.generated.begin(), r.generated.end(), spec.issuer) != r.generated.end() ||
        std::find(r.generated.begin(), r.generated.end(), spec.private_key) != r.generated.end();
    if (!dependency_changed && old_secrets.contains(spec.name) &&
        old_secrets[spec.name].value("fingerprint", "") == fp) {
      auto v = LoadSecret(store, p.name, spec.name);
      if (!v.ok()) return fail(v.status());
      if (*v) {
        values.emplace(spec.name, std::move(**v));
        new_secrets[spec.name] = old_secrets[spec.name];
        continue;
      }
    }
    auto made = GenerateSecret(spec, resolve);
    if (!made.ok()) return problem(path, made.status().message());
    made->fingerprint = fp;
    SecretBytes enc = EncodeSecretValue(*made);
    auto eb = enc.UnsafeBytes();
    batch.push_back(Store::Write{kSecrets, SecretKey(p.name, spec.name), Bytes(eb.begin(), eb.end()), std::nullopt});
    values.emplace(spec.name, std::move(*made));
    new_secrets[spec.name] = json{{"kind", std::string(policy::SecretKindName(spec.kind))},
                                  {"fingerprint", fp}, {"created", now}};
    r.generated.push_back(spec.name);
  }
  for (auto& [name, _] : old_secrets.items()) {
    if (!new_secrets.contains(name)) {
      batch.push_back(Store::Write{kSecrets, SecretKey(p.name, name), std::nullopt, std::nullopt});
    }
  }

  // Volume keys: an explicit key from the document (written by `cloister
  // image protect`, with the volume's first tag), or one the CAS makes. A
  // key that does not change keeps the tag the CAS holds for the volume.
  // The entry of a kept volume goes on as it is, with the tag, seq and time
  // of the latest commit (the document's `tag` is only a new volume's first).
  json old_volumes = (*cur) ? (*cur)->record.value("volumes", json::object()) : json::object();
  json new_volumes = json::object();
  std::vector<std::string> kept_volumes;
  for (const policy::Volume& v : p.volumes) {
    SecretValue key;
    key.kind = policy::SecretKind::kBinary;
    if (v.key) {
      key.bytes = *v.key;
    } else if (old_volumes.contains(v.name)) {
      new_volumes[v.name] = old_volumes[v.name];
      kept_volumes.push_back(v.name);
      continue;
    } else {
      key.bytes = SecretBytes(32);
      if (Status s = crypto::RandomBytes(key.bytes.UnsafeMutableBytes()); !s.ok()) return fail(s);
    }
    std::string fp = HexEncode(crypto::Sha256(key.bytes.UnsafeBytes()));
    if (old_volumes.contains(v.name) && old_volumes[v.name].value("fingerprint", "") == fp) {
      new_volumes[v.name] = old_volumes[v.name];
      kept_volumes.push_back(v.name);
      continue;
    }
    key.fingerprint = fp;
    SecretBytes enc = EncodeSecretValue(key);
    auto eb = enc.UnsafeBytes();
    batch.push_back(Store::Write{kSecrets, SecretKey(p.name, VolumeKeyName(v.name)), Bytes(eb.begin(), eb.end()),
                                 std::nullopt});
    new_volumes[v.name] = json{{"created", now}, {"fingerprint", fp}, {"tag", v.tag}};
  }
  for (auto& [name, _] : old_volumes.items()) {
    if (!new_volumes.contains(name)) {
      batch.push_back(Store::Write{kSecrets, SecretKey(p.name, VolumeKeyName(name)), std::nullopt, std::nullopt});
    }
  }

  uint64_t version = create ? 1 : (*cur)->record.value("version", uint64_t{0}) + 1;
  json rec = {{"hash", r.hash},
              {"document", document},
              {"redacted", policy::RedactedText(document)},
              {"version", version},
              {"creator", create ? caller : CreatorOf((*cur)->record)},
              {"created", create ? now : (*cur)->record.value("created", now)},
              {"updated", now},
              {"updated_by", caller},
              {"access", AccessJson(p.access_policy)},
              {"secrets", new_secrets},
              {"volumes", new_volumes}};
  json history = json::array();
  if (!create) {
    auto h = store.Get(kHistory, p.name);
    if (!h.ok()) return fail(h.status());
    if (*h) {
      auto hj = ParseRecord(**h, "history");
      if (hj.ok() && hj->contains("versions")) history = (*hj)["versions"];
    }
  }
  history.push_back(json{{"version", version}, {"hash", r.hash}, {"time", now}, {"author", caller}});
  const size_t record_write = batch.size();
  batch.push_back(Store::Write{kSessions, p.name, ToBytes(rec.dump()), create ? 0 : (*cur)->revision});
  batch.push_back(Store::Write{kHistory, p.name, ToBytes(json{{"versions", history}}.dump()), std::nullopt});
  auto known = store.Get(kIdentities, caller);
  if (known.ok() && !*known) {
    batch.push_back(Store::Write{kIdentities, caller, ToBytes(json{{"first_seen", now}}.dump()), std::nullopt});
  }
  auto applied = store.Apply(batch);
  // A volume commit (volumes.cc) may have changed the record since it was
  // read. It changes nothing but the entries of volumes, so while the
  // record is still the version this update replaces, the update takes the
  // newer entries of the volumes it keeps and is applied again: a running
  // service's commits do not make an administrator's update fail.
  for (int attempt = 0; !create && !applied.ok() && applied.status().code() == StatusCode::kFailedPrecondition &&
                        attempt < 32;
       ++attempt) {
    auto fresh = LoadSession(store, p.name);
    if (!fresh.ok() || !*fresh) break;
    const json& fr = (*fresh)->record;
    if (fr.value("hash", "") != p.predecessor || fr.value("version", uint64_t{0}) + 1 != version ||
        fr.value("created", "") != rec.value("created", "")) {
      break;  // another update or a re-created session: stale after all
    }
    const json fresh_volumes = fr.value("volumes", json::object());
    for (const std::string& name : kept_volumes) {
      if (fresh_volumes.contains(name) &&
          fresh_volumes[name].value("fingerprint", "") == rec["volumes"][name].value("fingerprint", "")) {
        rec["volumes"][name] = fresh_volumes[name];
      }
    }
    Bytes& value = *batch[record_write].value;
    SecureZero(value.data(), value.size());  // the document may hold explicit secret values
    value = ToBytes(rec.dump());
    batch[record_write].if_revision = (*fresh)->revision;
    applied = store.Apply(batch);
  }
  for (Store::Write& w : batch) {
    if (w.value) SecureZero(w.value->data(), w.value->size());
  }
  if (!applied.ok()) {
    if (applied.status().code() == StatusCode::kFailedPrecondition) {
      return fail(create ? AlreadyExists("session " + p.name + " was created meanwhile by another request")
                         : StaleError("stale predecessor: session " + p.name +
                                              " changed while this update was being applied"));
    }
    return fail(applied.status());
  }
  if (create) ++session_count_;
  r.version = version;
  return r;
}

StatusOr<SessionInfo> CasService::GetSession(const std::string& caller, const std::string& name) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto cur, LoadSession(*store_, name));
  if (!cur) return NotFound("no session " + name);
  const json& rec = cur->record;
  if (!Allowed(AccessList(rec, "read"), caller, CreatorOf(rec))) {
    return PermissionDenied("identity " + caller + " may not read session " + name);
  }
  SessionInfo s;
  s.name = name;
  s.hash = rec.value("hash", "");
  s.version = rec.value("version", uint64_t{0});
  s.creator = CreatorOf(rec);
  s.created = rec.value("created", "");
  s.updated = rec.value("updated", "");
  s.updated_by = rec.value("updated_by", "");
  s.document = rec.value("redacted", "");
  const json secrets = rec.contains("secrets") ? rec["secrets"] : json::object();
  for (auto it = secrets.begin(); it != secrets.end(); ++it) {
    s.secrets.push_back(SecretInfo{it.key(), it->value("kind", ""), it->value("created", "")});
  }
  // Key fingerprints stay inside: nothing of a volume key leaves the CAS
  // but through a grant.
  const json volumes = rec.value("volumes", json::object());
  for (auto it = volumes.begin(); it != volumes.end(); ++it) {
    VolumeInfo v{it.key(), it->value("created", ""), it->value("tag", ""), std::nullopt, it->value("committed", "")};
    if (auto seq = it->find("seq"); seq != it->end() && seq->is_number_unsigned()) v.seq = seq->get<uint64_t>();
    s.volumes.push_back(std::move(v));
  }
  return s;
}

StatusOr<std::vector<SessionSummary>> CasService::ListSessions(const std::string& caller) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto rows, store_->Scan(kSessions));
  std::vector<SessionSummary> out;
  for (auto& [name, value] : rows) {
    ASSIGN_OR_RETURN(json rec, ParseRecord(value, "session"));
    if (!Allowed(AccessList(rec, "read"), caller, CreatorOf(rec))) continue;
    out.push_back(SessionSummary{name, rec.value("hash", ""), rec.value("version", uint64_t{0}), rec.value("updated", "")});
  }
  return out;
}

StatusOr<std::vector<HistoryEntry>> CasService::History(const std::string& caller, const std::string& name) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto cur, LoadSession(*store_, name));
  if (!cur) return NotFound("no session " + name);
  if (!Allowed(AccessList(cur->record, "read"), caller, CreatorOf(cur->record))) {
    return PermissionDenied("identity " + caller + " may not read session " + name);
  }
  ASSIGN_OR_RETURN(auto h, store_->Get(kHistory, name));
  std::vector<HistoryEntry> out;
  if (!h) return out;
  ASSIGN_OR_RETURN(json hj, ParseRecord(*h, "history"));
  for (const json& e : hj.value("versions", json::array())) {
    out.push_back(HistoryEntry{e.value("version", uint64_t{0}), e.value("hash", ""), e.value("time", ""),
                               e.value("author", "")});
  }
  return out;
}

Status CasService::DeleteSession(const std::string& caller, const std::string& name) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto cur, LoadSession(*store_, name));
  if (!cur) return NotFound("no session " + name);
  if (!Allowed(AccessList(cur->record, "delete"), caller, CreatorOf(cur->record))) {
    return PermissionDenied("identity " + caller + " may not delete session " + name);
  }
  std::vector<Store::Write> batch;
  batch.push_back(Store::Write{kSessions, name, std::nullopt, cur->revision});
  batch.push_back(Store::Write{kHistory, name, std::nullopt, std::nullopt});
  const json secrets = cur->record.contains("secrets") ? cur->record["secrets"] : json::object();
  for (auto it = secrets.begin(); it != secrets.end(); ++it) {
    const std::string& secret = it.key();
    batch.push_back(Store::Write{kSecrets, SecretKey(name, secret), std::nullopt, std::nullopt});
  }
  const json volumes = cur->record.value("volumes", json::object());
  for (auto it = volumes.begin(); it != volumes.end(); ++it) {
    batch.push_back(Store::Write{kSecrets, SecretKey(name, VolumeKeyName(it.key())), std::nullopt, std::nullopt});
  }
  auto applied = store_->Apply(batch);
  // A volume commit (volumes.cc) that changed the record meanwhile leaves
  // the version, and so what is to be deleted, as it was: delete it anyway.
  for (int attempt = 0; !applied.ok() && applied.status().code() == StatusCode::kFailedPrecondition && attempt < 32;
       ++attempt) {
    auto fresh = store_->GetVersioned(kSessions, name);
    if (!fresh.ok() || !*fresh) break;
    auto fr = ParseRecord((*fresh)->value, "session");
    if (!fr.ok() || fr->value("hash", "") != cur->record.value("hash", "") ||
        fr->value("version", uint64_t{0}) != cur->record.value("version", uint64_t{0})) {
      break;
    }
    batch[0].if_revision = (*fresh)->revision;
    applied = store_->Apply(batch);
  }
  if (!applied.ok()) {
    if (applied.status().code() == StatusCode::kFailedPrecondition) {
      return StaleError("session " + name + " changed while it was being deleted; try again");
    }
    return applied.status();
  }
  --session_count_;
  // The records of its starts go with it, or whoever creates a session of
  // the same name later would read them.
  if (Status s = attestation_log_->Forget(name); !s.ok()) {
    std::fprintf(stderr, "cloister-cas: cannot delete the attestation records of a deleted session: %s\n",
                 s.message().c_str());
  }
  return Status::Ok();
}

}  // namespace cloister::cas
