#include "runtime/las_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "runtime/encoding.h"
#include "runtime/io.h"
#include "runtime/log.h"

namespace cloister::runtime {
namespace {

constexpr uint32_t kRequestMagic = 0x51434c43;   // "CLCQ"
constexpr uint32_t kResponseMagic = 0x52434c43;  // "CLCR"
constexpr uint32_t kEvidenceMagic = 0x56454c43;  // "CLEV"
constexpr uint16_t kVersion = 1;
constexpr uint8_t kKindEvidenceForCaller = 1;
constexpr uint8_t kKindRelayedAttestation = 2;
constexpr uint8_t kKindVolumeCommit = 3;
constexpr uint8_t kStatusRefused = 1;
constexpr uint8_t kStatusCasAnswer = 3;

// Offsets in Cloister evidence (docs/protocol.md section 2).
constexpr size_t kEvidenceTypeOffset = 6;
constexpr size_t kReportDataOffset = 7;
constexpr size_t kExecutableOffset = 39;
constexpr size_t kRuntimeOffset = 71;
constexpr size_t kMeasurementsEnd = 103;

uint32_t U32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// Reads exactly `size` bytes. 0, or an errno (ECONNRESET for an early
// end of stream, ETIMEDOUT past the deadline).
int ReadFull(int fd, uint8_t* data, size_t size, const Deadline& deadline) {
  while (size > 0) {
    ssize_t n = ::recv(fd, data, size, 0);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return ECONNRESET;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    if (int e = WaitFd(fd, POLLIN, deadline); e != 0) return e;
  }
  return 0;
}

int WriteFull(int fd, const uint8_t* data, size_t size, const Deadline& deadline) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    if (int e = WaitFd(fd, POLLOUT, deadline); e != 0) return e;
  }
  return 0;
}

std::string ErrnoText(int e) {
  if (e == ETIMEDOUT) return "no answer within " + std::to_string(kLasTimeoutMs / 1000) + " s";
  if (e == ECONNRESET) return "the connection closed early";
  return std::strerror(e);
}

}  // namespace

std::array<uint8_t, kLasRequestSize> EncodeLasRequest(const ReportData& report_data) {
  std::array<uint8_t, kLasRequestSize> r{};
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint8_t>(kRequestMagic >> (8 * i));
  r[4] = kVersion & 0xff;
  r[5] = kVersion >> 8;
  r[6] = kKindEvidenceForCaller;
  r[7] = 0;
  std::memcpy(r.data() + 8, report_data.data(), report_data.size());
  return r;
}

std::vector<uint8_t> EncodeRelayedLasRequest(const ReportData& report_data, const relay::Point& key,
                                             std::string_view config_id) {
  auto head = EncodeLasRequest(report_data);
  head[6] = kKindRelayedAttestation;
  std::vector<uint8_t> r(kLasRequestSize + key.size() + 2 + config_id.size());
  uint8_t* p = r.data();
  std::memcpy(p, head.data(), head.size());
  std::memcpy(p += head.size(), key.data(), key.size());
  p += key.size();
  *p++ = static_cast<uint8_t>(config_id.size());
  *p++ = static_cast<uint8_t>(config_id.size() >> 8);
  std::memcpy(p, config_id.data(), config_id.size());
  return r;
}

Result<LasResponseHeader> ParseLasResponseHeader(std::span<const uint8_t, kLasResponseHeaderSize> h) {
  if (U32(h.data()) != kResponseMagic) return Fail("it did not answer with the LAS protocol (bad magic)");
  if (U16(h.data() + 4) != kVersion)
    return Fail("it answered with protocol version " + std::to_string(U16(h.data() + 4)));
  LasResponseHeader r;
  uint8_t status = h[6];
  if (status > 2) return Fail("it answered with an unknown status " + std::to_string(status));
  r.refused = status == 1;
  r.relayed = status == 2;
  r.length = U32(h.data() + 8);
  uint32_t max = r.refused ? kMaxLasMessage : r.relayed ? kMaxLasRelayed : kMaxLasEvidence;
  const char* what = r.refused ? "message" : r.relayed ? "relayed answer" : "evidence";
  if (r.length > max) {
    return Fail("it announced " + std::to_string(r.length) + " bytes of " + what + " (at most " +
                std::to_string(max) + ")");
  }
  if (!r.refused && r.length == 0) return Fail(std::string("it sent an empty ") + what);
  return r;
}

LasRequest::LasRequest(std::string socket_path, const ReportData& report_data, int fd)
    : socket_path_(std::move(socket_path)), report_data_(report_data), fd_(fd), deadline_(kLasTimeoutMs) {}

LasRequest::~LasRequest() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<LasRequest>> LasRequest::Send(const std::string& socket_path, const ReportData& report_data) {
  auto request = EncodeLasRequest(report_data);
  return Connect(socket_path, report_data, request);
}

Result<std::unique_ptr<LasRequest>> LasRequest::SendRelayed(const std::string& socket_path,
                                                            const ReportData& report_data, const relay::Point& key,
                                                            std::string_view config_id) {
  return Connect(socket_path, report_data, EncodeRelayedLasRequest(report_data, key, config_id));
}

Result<std::unique_ptr<LasRequest>> LasRequest::Connect(const std::string& socket_path, const ReportData& report_data,
                                                        std::span<const uint8_t> request) {
  std::string at = "the LAS at " + socket_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return Fail(at + " is unreachable: the path is too long");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Fail(at + " is unreachable: " + std::strerror(errno));
  std::unique_ptr<LasRequest> r(new LasRequest(socket_path, report_data, fd));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    // A full listen queue makes a non-blocking Unix connect fail with
    // EAGAIN; it is worth waiting for the LAS then, within the deadline.
    while (e == EAGAIN || e == EINTR) {
      if (r->deadline_.RemainingMs() == 0) {
        e = ETIMEDOUT;
        break;
      }
      ::usleep(1000);
      e = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
    }
    if (e != 0 && e != EISCONN) return Fail(at + " is unreachable: " + ErrnoText(e) + " (is cloister-las running?)");
  }
  if (int e = WriteFull(fd, request.data(), request.size(), r->deadline_); e != 0) {
    return Fail(at + " did not take the request: " + ErrnoText(e));
  }
  return r;
}

Result<Done> LasRequest::ReadAnswer(bool relayed, std::vector<uint8_t>* body) {
  std::string at = "the LAS at " + socket_path_;
  std::array<uint8_t, kLasResponseHeaderSize> header{};
  if (int e = ReadFull(fd_, header.data(), header.size(), deadline_); e != 0) {
    return Fail(at + " did not answer: " + ErrnoText(e));
  }
  Result<LasResponseHeader> h = ParseLasResponseHeader(header);
  if (!h.ok()) return Fail(at + " is not usable: " + h.error());
  body->resize(h.value().length);
  if (int e = ReadFull(fd_, body->data(), body->size(), deadline_); e != 0) {
    return Fail(at + " did not send its whole answer: " + ErrnoText(e));
  }
  ::close(fd_);
  fd_ = -1;
  if (h.value().refused) {
    std::string_view message(reinterpret_cast<const char*>(body->data()), body->size());
    return Fail(at + " refused: " + (message.empty() ? std::string("no reason given") : PeerText(message)));
  }
  if (h.value().relayed != relayed) {
    return Fail(at + (relayed ? " answered with bare evidence, not a relayed reply (does it relay?)"
                              : " answered with a relayed reply to a request for evidence"));
  }
  return Done{};
}

Result<Done> LasRequest::CheckEvidence(std::span<const uint8_t> evidence) const {
  std::string at = "the LAS at " + socket_path_;
  if (evidence.size() < kMeasurementsEnd || U32(evidence.data()) != kEvidenceMagic) {
    return Fail(at + " sent something that is not Cloister evidence");
  }
  if (std::memcmp(evidence.data() + kReportDataOffset, report_data_.data(), report_data_.size()) != 0) {
    return Fail(at + " sent evidence for other report data than this process asked for");
  }
  return Done{};
}

Result<std::vector<uint8_t>> LasRequest::Receive() {
  std::vector<uint8_t> body;
  if (Result<Done> read = ReadAnswer(/*relayed=*/false, &body); !read.ok()) return read.failure();
  if (Result<Done> checked = CheckEvidence(body); !checked.ok()) return checked.failure();
  return body;
}

Result<RelayedAnswer> LasRequest::ReceiveRelayed() {
  std::vector<uint8_t> body;
  if (Result<Done> read = ReadAnswer(/*relayed=*/true, &body); !read.ok()) return read.failure();
  // u32 evidence length, evidence, u32 reply length, reply: nothing else.
  auto malformed = Fail("the LAS at " + socket_path_ + " sent a malformed relayed answer");
  if (body.size() < 4) return malformed;
  size_t evidence_size = U32(body.data());
  if (evidence_size > kMaxLasEvidence || body.size() - 4 < evidence_size + 4) return malformed;
  size_t reply_size = U32(body.data() + 4 + evidence_size);
  if (body.size() != 8 + evidence_size + reply_size) return malformed;
  RelayedAnswer a;
  a.evidence.assign(body.begin() + 4, body.begin() + 4 + static_cast<ptrdiff_t>(evidence_size));
  a.cas_reply.assign(body.begin() + 8 + static_cast<ptrdiff_t>(evidence_size), body.end());
  if (Result<Done> checked = CheckEvidence(a.evidence); !checked.ok()) return checked.failure();
  return a;
}

Result<std::vector<uint8_t>> RequestEvidence(const std::string& socket_path, const ReportData& report_data) {
  Result<std::unique_ptr<LasRequest>> r = LasRequest::Send(socket_path, report_data);
  if (!r.ok()) return r.failure();
  return r.value()->Receive();
}

std::string EvidenceTypeName(std::span<const uint8_t> evidence) {
  if (evidence.size() <= kEvidenceTypeOffset) return "";
  uint8_t t = evidence[kEvidenceTypeOffset];
  if (t == 1) return "sim";
  return "type " + std::to_string(t);
}

bool EvidenceMeasurements(std::span<const uint8_t> evidence, std::string* executable, std::string* runtime) {
  if (evidence.size() < kMeasurementsEnd) return false;
  *executable = HexEncode(evidence.subspan(kExecutableOffset, 32));
  *runtime = HexEncode(evidence.subspan(kRuntimeOffset, 32));
  return true;
}

Result<CasAnswer> SendCommitReport(const std::string& socket_path, std::string_view report) {
  std::string at = "the LAS at " + socket_path;
  if (report.empty() || report.size() > kMaxCommitReport) return Fail("a commit report of " + std::to_string(report.size()) + " bytes");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return Fail(at + " is unreachable: the path is too long");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  Deadline deadline(kLasTimeoutMs);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(at + " is unreachable: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fail(at + " is unreachable: " + ErrnoText(errno));
  }
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::vector<uint8_t> request(kLasRequestSize + 4 + report.size(), 0);
  auto head = EncodeLasRequest(ReportData{});
  head[6] = kKindVolumeCommit;
  std::memcpy(request.data(), head.data(), head.size());
  for (int i = 0; i < 4; ++i) request[kLasRequestSize + i] = static_cast<uint8_t>(report.size() >> (8 * i));
  std::memcpy(request.data() + kLasRequestSize + 4, report.data(), report.size());
  if (int e = WriteFull(fd, request.data(), request.size(), deadline); e != 0) {
    return Fail(at + " did not take the report: " + ErrnoText(e));
  }
  uint8_t h[kLasResponseHeaderSize];
  if (int e = ReadFull(fd, h, sizeof(h), deadline); e != 0) return Fail(at + " did not answer: " + ErrnoText(e));
  if (U32(h) != kResponseMagic || U16(h + 4) != kVersion) return Fail(at + " did not answer with the LAS protocol");
  uint32_t length = U32(h + 8);
  if (h[6] == kStatusRefused && length <= kMaxLasMessage) {
    std::string message(length, '\0');
    if (ReadFull(fd, reinterpret_cast<uint8_t*>(message.data()), length, deadline) != 0) message = "(no reason)";
    return Fail(at + " refused the report: " + PeerText(message));
  }
  if (h[6] != kStatusCasAnswer || length < 2 || length > kMaxCasAnswer) {
    return Fail(at + " answered the report with status " + std::to_string(h[6]) + " and " + std::to_string(length) +
                " bytes");
  }
  std::vector<uint8_t> body(length);
  if (int e = ReadFull(fd, body.data(), body.size(), deadline); e != 0) {
    return Fail(at + " did not answer: " + ErrnoText(e));
  }
  CasAnswer answer;
  answer.http_status = U16(body.data());
  answer.body.assign(reinterpret_cast<const char*>(body.data()) + 2, body.size() - 2);
  return answer;
}

}  // namespace cloister::runtime
