#include "volume/sync_log.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/bytes.h"
#include "base/secret.h"
#include "crypto/crypto.h"

namespace cloister::volume {
namespace {

constexpr uint64_t kSharedMagic = 0x6873676f6c6e7973;  // "synlogsh"
constexpr char kHeaderMagic[8] = {'C', 'L', 'S', 'Y', 'N', 'C', 'L', 'G'};
constexpr uint32_t kHeaderVersion = 1;
constexpr size_t kRunSize = 16;
constexpr size_t kBodyFixed = 24;
constexpr uint32_t kMaxRunChunks = uint32_t{1} << 20;

uint64_t Mark(uint64_t generation, uint64_t index) { return generation << 32 | index; }

Status WriteFully(int fd, const uint8_t* p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return IoError(std::string("write to the sync log failed: ") + std::strerror(w < 0 ? errno : EIO));
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

}  // namespace

Status SyncLogInitShared(SyncLogShared* sh, uint32_t chunk_size, uint64_t capacity, uint64_t max_record_data) {
  if (chunk_size == 0 || capacity <= kSyncLogHeaderSize || capacity >= (uint64_t{1} << 40)) {
    return InvalidArgument("invalid sync log geometry");
  }
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a) != 0) return InternalError("pthread_mutexattr_init failed");
  int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  if (rc == 0) rc = pthread_mutex_init(&sh->mu, &a);
  pthread_mutexattr_destroy(&a);
  if (rc != 0) return InternalError("cannot set up the sync log's lock");
  sh->state = kSyncLogClosed;
  sh->chunk_size = chunk_size;
  sh->generation = 0;
  sh->next_index = 0;
  sh->next_offset = kSyncLogHeaderSize;
  sh->capacity = capacity;
  sh->max_record_data = max_record_data;
  std::memset(sh->base_tag, 0, sizeof(sh->base_tag));
  OPENSSL_cleanse(sh->key, sizeof(sh->key));
  sh->durable.store(0, std::memory_order_relaxed);
  sh->magic = kSharedMagic;
  return Status::Ok();
}

SyncLogLock::SyncLogLock(SyncLogShared* sh) : sh_(sh) {
  int rc = pthread_mutex_lock(&sh->mu);
  if (rc == EOWNERDEAD) {
    // The holder died between two steps of an append or a start: what it
    // left in the shared state is not trusted, and no record goes in
    // until the writer starts a new log.
    sh->state = kSyncLogBroken;
    pthread_mutex_consistent(&sh->mu);
    rc = 0;
  }
  locked_ = rc == 0;
}

SyncLogLock::~SyncLogLock() {
  if (locked_) pthread_mutex_unlock(&sh_->mu);
}

StatusOr<SyncLogPosition> SyncLogAppend(SyncLogShared* sh, int fd,
                                        const std::function<Status(SyncRecordContent&)>& fill) {
  if (sh->magic != kSharedMagic) return Unavailable("no sync log");
  SyncLogLock lock(sh);
  if (!lock.locked()) return Unavailable("the sync log is in use by this thread");
  if (sh->state != kSyncLogOpen) return Unavailable("the sync log takes no records now");
  SyncRecordContent c;
  Status filled = fill(c);
  std::vector<uint8_t> body;
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(filled);
    if (c.skip) return Status::Ok();
    if (c.data.size() > sh->max_record_data) return Unavailable("too large for the sync log");
    body = format::EncodeSyncRecordBody(c, sh->chunk_size);
    const uint64_t total = format::kSyncRecordHead + 12 + body.size() + 16;
    if (sh->next_offset + total > sh->capacity) return Unavailable("the sync log is full");
    std::vector<uint8_t> rec(total);
    StoreU32(rec.data(), format::kSyncRecordMagic);
    StoreU32(rec.data() + 4, static_cast<uint32_t>(body.size()));
    StoreU64(rec.data() + 8, sh->next_index);
    uint8_t aad[format::kSyncRecordHead + sizeof(sh->base_tag)];
    std::memcpy(aad, rec.data(), format::kSyncRecordHead);
    std::memcpy(aad + format::kSyncRecordHead, sh->base_tag, sizeof(sh->base_tag));
    ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(SecretBytes(sh->key, sizeof(sh->key))));
    crypto::Nonce nonce;
    crypto::AeadTag tag;
    uint8_t* ct = rec.data() + format::kSyncRecordHead + 12;
    RETURN_IF_ERROR(aead->Seal(aad, body, std::span<uint8_t>(ct, body.size()), nonce, tag));
    std::memcpy(rec.data() + format::kSyncRecordHead, nonce.data(), 12);
    std::memcpy(ct + body.size(), tag.data(), 16);
    RETURN_IF_ERROR(WriteFully(fd, rec.data(), rec.size(), sh->next_offset));
    sh->next_offset += total;
    sh->next_index += 1;
    return Status::Ok();
  }();
  OPENSSL_cleanse(c.data.data(), c.data.size());
  if (!body.empty()) OPENSSL_cleanse(body.data(), body.size());
  if (!s.ok()) return s;
  return SyncLogPosition{sh->generation, sh->next_index};
}

StatusOr<SyncLogPosition> SyncLogEnd(SyncLogShared* sh) {
  if (sh->magic != kSharedMagic) return Unavailable("no sync log");
  SyncLogLock lock(sh);
  if (!lock.locked()) return Unavailable("the sync log is in use by this thread");
  if (sh->state != kSyncLogOpen) return Unavailable("the sync log takes no records now");
  return SyncLogPosition{sh->generation, sh->next_index};
}

Status SyncLogMakeDurable(SyncLogShared* sh, int fd, SyncLogPosition pos) {
  const uint64_t want = Mark(pos.generation, pos.index);
  if (sh->durable.load(std::memory_order_acquire) >= want) return Status::Ok();
  int rc;
  do {
    rc = ::fdatasync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return IoError(std::string("fdatasync of the sync log failed: ") + std::strerror(errno));
  uint64_t cur = sh->durable.load(std::memory_order_acquire);
  while (cur < want && !sh->durable.compare_exchange_weak(cur, want, std::memory_order_acq_rel)) {
  }
  return Status::Ok();
}

namespace format {

std::vector<uint8_t> EncodeSyncLogHeader(const SyncLogHeader& h) {
  std::vector<uint8_t> b(kSyncLogHeaderUsed, 0);
  std::memcpy(b.data(), kHeaderMagic, 8);
  StoreU32(b.data() + 8, kHeaderVersion);
  StoreU32(b.data() + 12, h.chunk_size);
  StoreU64(b.data() + 16, h.base_seq);
  std::memcpy(b.data() + 24, h.base_tag.data(), 32);
  std::memcpy(b.data() + 56, h.salt.data(), 32);
  return b;
}

StatusOr<SyncLogHeader> ParseSyncLogHeader(std::span<const uint8_t> b) {
  if (b.size() < kSyncLogHeaderUsed || std::memcmp(b.data(), kHeaderMagic, 8) != 0) {
    return IntegrityError("not a sync log");
  }
  if (LoadU32(b.data() + 8) != kHeaderVersion || LoadU64(b.data() + 88) != 0) {
    return IntegrityError("unknown sync log version");
  }
  SyncLogHeader h;
  h.chunk_size = LoadU32(b.data() + 12);
  h.base_seq = LoadU64(b.data() + 16);
  std::memcpy(h.base_tag.data(), b.data() + 24, 32);
  std::memcpy(h.salt.data(), b.data() + 56, 32);
  return h;
}

std::vector<uint8_t> EncodeSyncRecordBody(const SyncRecordContent& c, uint32_t) {
  std::vector<uint8_t> b(kBodyFixed + kRunSize * c.runs.size() + c.data.size());
  StoreU64(b.data(), c.ino);
  StoreU64(b.data() + 8, c.size);
  StoreU32(b.data() + 16, static_cast<uint32_t>(c.runs.size()));
  StoreU32(b.data() + 20, 0);
  uint8_t* p = b.data() + kBodyFixed;
  for (const SyncRun& r : c.runs) {
    StoreU64(p, r.first_chunk);
    StoreU32(p + 8, r.count);
    StoreU32(p + 12, 0);
    p += kRunSize;
  }
  if (!c.data.empty()) std::memcpy(p, c.data.data(), c.data.size());
  return b;
}

StatusOr<SyncRecordContent> ParseSyncRecordBody(std::span<const uint8_t> b, uint32_t chunk_size) {
  if (b.size() < kBodyFixed) return IntegrityError("sync log record too short");
  SyncRecordContent c;
  c.ino = LoadU64(b.data());
  c.size = LoadU64(b.data() + 8);
  const uint32_t n = LoadU32(b.data() + 16);
  if (LoadU32(b.data() + 20) != 0 || c.size > (uint64_t{1} << 48)) return IntegrityError("malformed sync log record");
  if (n > (b.size() - kBodyFixed) / kRunSize) return IntegrityError("malformed sync log record");
  const uint8_t* p = b.data() + kBodyFixed;
  uint64_t next_free = 0;  // first chunk a following run may start at
  uint64_t want = 0;       // bytes of data the runs cover
  for (uint32_t i = 0; i < n; ++i, p += kRunSize) {
    SyncRun r{LoadU64(p), LoadU32(p + 8)};
    if (LoadU32(p + 12) != 0 || r.count == 0 || r.count > kMaxRunChunks || r.first_chunk < next_free ||
        r.first_chunk > (c.size / chunk_size)) {
      return IntegrityError("malformed sync log record");
    }
    const uint64_t start = r.first_chunk * chunk_size;
    const uint64_t end = std::min<uint64_t>((r.first_chunk + r.count) * chunk_size, c.size);
    if (start >= end) return IntegrityError("malformed sync log record");
    want += end - start;
    next_free = r.first_chunk + r.count;
    c.runs.push_back(r);
  }
  if (want != b.size() - kBodyFixed - kRunSize * n) return IntegrityError("malformed sync log record");
  c.data.assign(p, b.data() + b.size());
  return c;
}

}  // namespace format
}  // namespace cloister::volume
