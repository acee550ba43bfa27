// The LAS end to end inside one process: a real socket server, the real
// measurer and signer, and this test process as the caller, so the evidence
// must describe this very process.
#include "las/socket_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <thread>

#include "attest/evidence.h"
#include "attest/measure.h"
#include "crypto/hpke.h"
#include "crypto/identity.h"
#include "las/evidence_service.h"
#include "las/measure_cache.h"
#include "las/process_measurer.h"

namespace cloister::las {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/las_socket_test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

attest::Sha256Value Measurement(const std::string& path) {
  auto m = attest::MeasureFile(path);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  attest::Sha256Value v{};
  if (!m.ok()) return v;
  auto raw = HexDecode(m->sha256);
  std::copy(raw->begin(), raw->end(), v.begin());
  return v;
}

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv = {10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Everything the server sends until it closes.
Bytes ReadToEnd(int fd) {
  Bytes out;
  uint8_t buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

StatusOr<Response> Ask(const std::string& path, std::span<const uint8_t> request) {
  int fd = Connect(path);
  if (fd < 0) return IoError("connect failed");
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return IoError("write failed");
  }
  Bytes all = ReadToEnd(fd);
  ::close(fd);
  return DecodeResponse(all);
}

attest::Sha256Value ReportData() {
  attest::Sha256Value v;
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(0xA0 + i);
  return v;
}

// A node with a self-signed certificate standing in for the CAS-issued one.
struct Node {
  crypto::NewIdentity id;
  std::unique_ptr<NodeCredentials> credentials;
  static Node Make() {
    Node n;
    auto id = crypto::CreateIdentity(1);
    EXPECT_TRUE(id.ok());
    n.id = std::move(*id);
    auto cert = CheckNodeCertificate(n.id.certificate_pem, n.id.id, "", "test certificate");
    EXPECT_TRUE(cert.ok());
    n.credentials = std::make_unique<NodeCredentials>(n.id.private_key_pem, n.id.id, std::move(*cert));
    return n;
  }
};

class SocketServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = Node::Make();
    measurer_ = std::make_unique<ProcessMeasurer>(cache_);
    service_ = std::make_unique<EvidenceService>(*node_.credentials, *measurer_);
    // A parent directory that does not exist yet: the server makes it.
    path_ = dir_.path() + "/run/cloister/las.sock";
  }

  std::unique_ptr<SocketServer> StartServer(SocketServerOptions options = {}) {
    options.path = path_;
    auto server = SocketServer::Listen(options, *service_);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (!server.ok()) return nullptr;
    (*server)->Start();
    return std::move(*server);
  }

  TempDir dir_;
  Node node_;
  MeasurementCache cache_;
  std::unique_ptr<ProcessMeasurer> measurer_;
  std::unique_ptr<EvidenceService> service_;
  std::string path_;
};

TEST_F(SocketServerTest, GivesEvidenceAboutTheCaller) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  ASSERT_EQ(::stat((dir_.path() + "/run/cloister").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  const int64_t before = std::time(nullptr);
  auto response = Ask(path_, EncodeRequest(ReportData()));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_EQ(response->status, ResponseStatus::kEvidence) << response->message();

  auto claims = attest::VerifySimEvidence(response->body);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(claims->type, attest::EvidenceType::kSim);
  EXPECT_EQ(claims->report_data, ReportData());
  EXPECT_EQ(claims->pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(claims->uid, static_cast<uint32_t>(::getuid()));
  EXPECT_EQ(claims->executable, Measurement("/proc/self/exe"));
  EXPECT_EQ(claims->runtime, attest::Sha256Value{}) << "no runtime is mapped into the test";
  EXPECT_EQ(claims->node_id, node_.id.id);
  EXPECT_EQ(claims->node_certificate_pem, node_.id.certificate_pem);
  const int64_t issued = static_cast<int64_t>(claims->issued_at_ns / 1'000'000'000);
  EXPECT_GE(issued, before);
  EXPECT_LE(issued, std::time(nullptr));

  // Many callers at once, more than there are workers.
  std::vector<std::thread> callers;
  std::atomic<int> granted{0};
  for (int i = 0; i < 32; ++i) {
    callers.emplace_back([&] {
      auto r = Ask(path_, EncodeRequest(ReportData()));
      if (r.ok() && r->status == ResponseStatus::kEvidence && attest::VerifySimEvidence(r->body).ok()) ++granted;
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(granted, 32);

  server->Stop();
  EXPECT_NE(::access(path_.c_str(), F_OK), 0) << "the socket is removed at stop";
}

TEST_F(SocketServerTest, RefusesABadRequestSayingWhy) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  auto request = EncodeRequest(ReportData());
  request[4] = 9;  // version
  auto response = Ask(path_, request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, ResponseStatus::kRefused);
  EXPECT_NE(response->message().find("bad request: request version 9"), std::string::npos) << response->message();
}

TEST_F(SocketServerTest, DropsAnIncompleteRequestAfterTheTimeout) {
  SocketServerOptions options;
  options.read_timeout_ms = 300;
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  auto request = EncodeRequest(ReportData());
  ASSERT_EQ(::write(fd, request.data(), 20), 20);  // half a request, then silence
  auto start = std::chrono::steady_clock::now();
  Bytes got = ReadToEnd(fd);
  ::close(fd);
  EXPECT_TRUE(got.empty());
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(5));

  // The server still serves others.
  auto response = Ask(path_, EncodeRequest(ReportData()));
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, ResponseStatus::kEvidence);
}

TEST_F(SocketServerTest, ARequestSentInPiecesIsServed) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  auto request = EncodeRequest(ReportData());
  for (size_t i = 0; i < request.size(); i += 7) {
    size_t n = std::min<size_t>(7, request.size() - i);
    ASSERT_EQ(::write(fd, request.data() + i, n), static_cast<ssize_t>(n));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto response = DecodeResponse(ReadToEnd(fd));
  ::close(fd);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, ResponseStatus::kEvidence);
}

TEST_F(SocketServerTest, ReplacesAStaleSocketButNothingElse) {
  {
    auto first = StartServer();
    ASSERT_TRUE(first);
    // A second LAS on the same path while the first one listens: refused.
    SocketServerOptions options;
    options.path = path_;
    auto second = SocketServer::Listen(options, *service_);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  }
  // A socket file nobody listens on, as a killed LAS leaves it.
  int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(stale);
  {
    auto server = StartServer();
    ASSERT_TRUE(server);
    auto response = Ask(path_, EncodeRequest(ReportData()));
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, ResponseStatus::kEvidence);
  }
  // A regular file is left alone.
  std::ofstream(path_) << "not a socket";
  SocketServerOptions options;
  options.path = path_;
  auto refused = SocketServer::Listen(options, *service_);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("is not a socket"), std::string::npos);
  EXPECT_EQ(::access(path_.c_str(), F_OK), 0);
}

TEST_F(SocketServerTest, StopsWhileAConnectionIsIdle) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a worker now waits for the request
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ::close(fd);
}

TEST(EvidenceServiceTest, RefusesWithAnExpiredCertificate) {
  Node node = Node::Make();
  MeasurementCache cache;
  ProcessMeasurer measurer(cache);
  const int64_t not_after = node.credentials->certificate()->validity.not_after;
  EvidenceService service(*node.credentials, measurer, [&] { return (not_after + 10) * int64_t{1'000'000'000}; });
  Reply r = service.Handle(EvidenceRequest{}, PeerCredentials{static_cast<uint32_t>(::getpid()), 0});
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.refusal, "this node has no valid certificate (expired at " + Rfc3339(not_after) + ")");
}

TEST(EvidenceServiceTest, RefusesForAProcessThatIsGone) {
  Node node = Node::Make();
  MeasurementCache cache;
  ProcessMeasurer measurer(cache);
  EvidenceService service(*node.credentials, measurer);
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  Reply r = service.Handle(EvidenceRequest{}, PeerCredentials{static_cast<uint32_t>(child), 0});
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.refusal, "process " + std::to_string(child) + " is gone");

  Reply hidden = service.Handle(EvidenceRequest{}, PeerCredentials{0, 0});
  EXPECT_FALSE(hidden.granted);
  EXPECT_NE(hidden.refusal.find("not visible"), std::string::npos);
}

// Maps `path` into this process for the lifetime of the object, the way the
// dynamic loader maps a library (without running any of it).
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    addr_ = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    EXPECT_NE(addr_, MAP_FAILED);
    ::close(fd);
  }
  ~Mapping() {
    if (addr_ != MAP_FAILED) ::munmap(addr_, 4096);
  }

 private:
  void* addr_ = MAP_FAILED;
};

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc | std::ios::binary) << content;
}

TEST(ProcessMeasurerTest, MeasuresAMappedRuntimeByMapFilesAndByPath) {
  TempDir dir;
  std::string lib = dir.path() + "/libcloister-runtime.so";
  WriteFile(lib, std::string(8192, 'r'));
  Mapping mapping(lib);
  for (bool map_files : {true, false}) {
    MeasurementCache cache;
    ProcessMeasurer::Options options;
    options.use_map_files = map_files;
    ProcessMeasurer measurer(cache, options);
    auto m = measurer.Measure(static_cast<uint32_t>(::getpid()));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(m->has_runtime);
    EXPECT_EQ(m->runtime, Measurement(lib));
    EXPECT_EQ(m->executable, Measurement("/proc/self/exe"));
  }
}

TEST(ProcessMeasurerTest, RefusesARuntimeReplacedOnDisk) {
  TempDir dir;
  std::string lib = dir.path() + "/libcloister-runtime.so";
  WriteFile(lib, std::string(8192, 'o'));
  const attest::Sha256Value mapped = Measurement(lib);
  Mapping mapping(lib);
  // An upgrade replaces the file under the same name: a new inode.
  std::string next = dir.path() + "/next";
  WriteFile(next, std::string(8192, 'n'));
  ASSERT_EQ(::rename(next.c_str(), lib.c_str()), 0);

  MeasurementCache cache;
  ProcessMeasurer::Options options;
  options.use_map_files = false;
  ProcessMeasurer by_path(cache, options);
  auto m = by_path.Measure(static_cast<uint32_t>(::getpid()));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cannot measure the runtime library of process"), std::string::npos);
  EXPECT_NE(m.status().message().find("deleted or replaced"), std::string::npos) << m.status().message();

  // Through map_files the LAS reads the very file that is mapped, replaced
  // or not. The kernel allows that only with CAP_SYS_ADMIN or
  // CAP_CHECKPOINT_RESTORE, so this half runs only where the test has them.
  DIR* probe = ::opendir("/proc/self/map_files");
  bool capable = probe != nullptr && ::readdir(probe) != nullptr;
  if (probe != nullptr) ::closedir(probe);
  if (!capable || ::access("/proc/self/map_files/.", R_OK) != 0) GTEST_SKIP() << "no access to map_files";
  ProcessMeasurer by_map_files(cache);
  auto via = by_map_files.Measure(static_cast<uint32_t>(::getpid()));
  if (!via.ok() && via.status().message().find("deleted or replaced") != std::string::npos) {
    GTEST_SKIP() << "map_files refused: " << via.status().message();
  }
  ASSERT_TRUE(via.ok()) << via.status().ToString();
  EXPECT_EQ(via->runtime, mapped);
}

TEST(ProcessMeasurerTest, RefusesTwoDifferentRuntimes) {
  TempDir dir;
  std::string a = dir.path() + "/libcloister-runtime.so";
  std::string b = dir.path() + "/libcloister-runtime-old.so";
  WriteFile(a, std::string(4096, 'a'));
  WriteFile(b, std::string(4096, 'b'));
  Mapping ma(a), mb(b);
  MeasurementCache cache;
  ProcessMeasurer measurer(cache);
  auto m = measurer.Measure(static_cast<uint32_t>(::getpid()));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("more than one runtime library"), std::string::npos) << m.status().message();
}

// ---- relayed attestation through the real socket (docs/protocol.md section 6) ----

// Stands in for EvidenceService: grants every request with fixed evidence
// and a fixed CAS reply, and keeps what it was handed.
class FakeRelayHandler : public RequestHandler {
 public:
  Reply Handle(const EvidenceRequest& request, const PeerCredentials& peer) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    last_ = request;
    last_pid_ = peer.pid;
    Reply r;
    r.granted = true;
    r.evidence = evidence;
    r.cas_reply = cas_reply;
    return r;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  EvidenceRequest last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  uint32_t last_pid() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_pid_;
  }

  const Bytes evidence = Bytes(200, 0xE5);
  const Bytes cas_reply = Bytes(333, 0xC3);

 private:
  std::mutex mu_;
  int calls_ = 0;
  EvidenceRequest last_;
  uint32_t last_pid_ = 0;
};

TEST_F(SocketServerTest, RelaysTheEvidenceAndTheCasReply) {
  FakeRelayHandler handler;  // outlives the server
  SocketServerOptions options;
  options.path = path_;
  auto server = SocketServer::Listen(options, handler);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  (*server)->Start();

  hpke::KeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_TRUE(key);
  relay::Point point;
  ASSERT_TRUE(hpke::PublicPoint(key.get(), &point));
  relay::Hash report_data{};
  ASSERT_TRUE(relay::ReportDataOfPoint(point, &report_data));

  auto response = Ask(path_, EncodeRelayedRequest(report_data, point, "shop/web"));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_EQ(response->status, ResponseStatus::kRelayed) << response->message();
  ByteReader reader(response->body);
  uint32_t evidence_size = reader.U32();
  auto evidence = reader.Take(evidence_size);
  uint32_t reply_size = reader.U32();
  auto reply = reader.Take(reply_size);
  ASSERT_TRUE(reader.AtEnd()) << "body of " << response->body.size() << " bytes";
  EXPECT_EQ(Bytes(evidence.begin(), evidence.end()), handler.evidence);
  EXPECT_EQ(Bytes(reply.begin(), reply.end()), handler.cas_reply);

  ASSERT_EQ(handler.calls(), 1);
  EvidenceRequest seen = handler.last();
  EXPECT_EQ(seen.kind, RequestKind::kRelayedAttestation);
  EXPECT_EQ(seen.report_data, report_data);
  EXPECT_EQ(seen.key, point);
  EXPECT_EQ(seen.config_id, "shop/web");
  EXPECT_EQ(handler.last_pid(), static_cast<uint32_t>(::getpid()));

  // Report data that is not the hash of the key: refused before the handler.
  relay::Hash other = report_data;
  other[5] ^= 0x40;
  auto refused = Ask(path_, EncodeRelayedRequest(other, point, "shop/web"));
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, ResponseStatus::kRefused);
  EXPECT_NE(refused->message().find("bad request: "), std::string::npos) << refused->message();
  EXPECT_NE(refused->message().find("report data"), std::string::npos) << refused->message();

  // A config id length out of range: refused without waiting for the rest.
  Bytes empty_id = EncodeRelayedRequest(report_data, point, "");
  auto no_id = Ask(path_, empty_id);
  ASSERT_TRUE(no_id.ok()) << no_id.status().ToString();
  EXPECT_EQ(no_id->status, ResponseStatus::kRefused);
  EXPECT_NE(no_id->message().find("config id length 0 is out of range"), std::string::npos) << no_id->message();
  EXPECT_EQ(handler.calls(), 1);
}

// A volume commit (docs/protocol.md section 7): the report goes to the CAS
// exactly as the caller sent it, and the CAS's status and body come back.
class CommitCarrier {
 public:
  StatusOr<CasAnswer> operator()(const std::string& report) {
    std::lock_guard<std::mutex> l(mu_);
    ++calls_;
    last_ = report;
    if (!error_.ok()) return error_;
    return CasAnswer{409, "{\"error\":\"older\",\"reason\":\"stale\"}"};
  }
  int calls() {
    std::lock_guard<std::mutex> l(mu_);
    return calls_;
  }
  std::string last() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }
  void Fail(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    error_ = std::move(s);
  }

 private:
  std::mutex mu_;
  int calls_ = 0;
  std::string last_;
  Status error_;
};

TEST_F(SocketServerTest, CarriesAVolumeCommitToTheCasAndItsAnswerBack) {
  CommitCarrier carrier;
  service_ = std::make_unique<EvidenceService>(*node_.credentials, *measurer_, EvidenceService::ClockFn(),
                                               EvidenceService::RelayFn(),
                                               [&carrier](const std::string& r) { return carrier(r); });
  auto server = StartServer();
  ASSERT_TRUE(server);

  hpke::KeyPtr key(EVP_EC_gen("P-256"));
  relay::Point point;
  ASSERT_TRUE(hpke::PublicPoint(key.get(), &point));
  volume_commit::Tag tag;
  tag.fill(0x5a);
  std::string report, error;
  ASSERT_TRUE(volume_commit::BuildRequest(Bytes(40, 7), point, "data", 3, tag, key.get(), &report, &error)) << error;

  auto response = Ask(path_, *EncodeVolumeCommitRequest(report));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_EQ(response->status, ResponseStatus::kCasAnswer) << response->message();
  auto answer = DecodeCasAnswer(response->body);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->http_status, 409);
  EXPECT_EQ(std::string(answer->body.begin(), answer->body.end()), "{\"error\":\"older\",\"reason\":\"stale\"}");
  EXPECT_EQ(carrier.last(), report);
  EXPECT_EQ(carrier.calls(), 1);

  // What cannot be a report is refused by the LAS; the CAS never sees it.
  auto garbage = Ask(path_, *EncodeVolumeCommitRequest("{\"token\":1}"));
  ASSERT_TRUE(garbage.ok()) << garbage.status().ToString();
  EXPECT_EQ(garbage->status, ResponseStatus::kRefused);
  EXPECT_NE(garbage->message().find("bad request: the commit report is malformed"), std::string::npos)
      << garbage->message();
  // A length out of range: refused without waiting for the report.
  Bytes too_long = *EncodeVolumeCommitRequest("x");
  StoreU32(too_long.data() + kRequestSize, kMaxCommitReport + 1);
  auto refused = Ask(path_, too_long);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, ResponseStatus::kRefused);
  EXPECT_NE(refused->message().find("out of range"), std::string::npos) << refused->message();
  // A commit header with report data.
  Bytes with_data = *EncodeVolumeCommitRequest(report);
  with_data[8] = 1;
  auto no_data = Ask(path_, with_data);
  ASSERT_TRUE(no_data.ok());
  EXPECT_EQ(no_data->status, ResponseStatus::kRefused);
  EXPECT_EQ(carrier.calls(), 1);

  // The CAS out of reach: the caller is told so.
  carrier.Fail(Unavailable("the LAS could not carry the commit to the CAS at cas:8081: connection refused"));
  auto unreachable = Ask(path_, *EncodeVolumeCommitRequest(report));
  ASSERT_TRUE(unreachable.ok());
  EXPECT_EQ(unreachable->status, ResponseStatus::kRefused);
  EXPECT_NE(unreachable->message().find("could not carry the commit"), std::string::npos) << unreachable->message();
}

TEST(EvidenceServiceTest, ALasWithoutACasLinkRefusesCommits) {
  Node node = Node::Make();
  MeasurementCache cache;
  ProcessMeasurer measurer(cache);
  EvidenceService service(*node.credentials, measurer);
  EvidenceRequest req;
  req.kind = RequestKind::kVolumeCommit;
  req.commit_report = "{}";
  Reply r = service.Handle(req, PeerCredentials{static_cast<uint32_t>(::getpid()), 0});
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.refusal, "this LAS does not carry volume commits to a CAS");
}

}  // namespace
}  // namespace cloister::las
