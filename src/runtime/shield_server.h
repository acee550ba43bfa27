// The volume server of the file shield: one process per protected program
// (forked by the runtime before main, see shield_client.h) that holds the
// session's volumes open and serves every process of the program.
//
// Each file a process opens is loaded once, authenticated chunk by chunk,
// into a memfd that all processes share: reads and writes then go straight
// to memory, so that stdio, mmap, sendfile, locks and fork work on it as on
// any file, and two processes see each other's writes at once. The server
// writes the chunks the clients marked in the file's dirty map back into
// the volume (encrypting them) when a process calls fsync, closes its last
// descriptor of the file, or exits, and commits; the new tag goes to the
// commit listener (which reports it to the CAS).
//
// The server is single-threaded: requests from all processes are served in
// turn, and fsyncs that arrive together share one commit.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cloister/volume.h"
#include "runtime/result.h"
#include "runtime/secret.h"
#include "runtime/shield_report.h"

namespace cloister::runtime::shield {

struct ServerVolume {
  std::string name;          // the volume's name in the session
  std::string path;          // the directory on disk (= the mount path)
  SecretBytes key;           // 32 bytes
  std::vector<uint8_t> tag;  // the tag the CAS holds; empty: none yet
  bool read_only = false;
};

class Server {
 public:
  using CommitListener = std::function<void(size_t volume, uint64_t seq, const volume::Tag& tag)>;

  // Opens (or, on first use, creates) every volume. A volume older than
  // its expected tag, or not authentic, fails with a one-line reason.
  static Result<std::unique_ptr<Server>> Open(std::vector<ServerVolume> volumes);
  virtual ~Server() = default;

  virtual void SetCommitListener(CommitListener listener) = 0;
  // Reports every commit of a writable volume to the CAS (and, at once,
  // a state the CAS does not know yet: a new volume, or commits a previous
  // run made but could not report).
  virtual void SetReporting(Reporting reporting) = 0;
  // The state of each volume after Open (and after later commits).
  virtual volume::VolumeInfo Info(size_t volume) = 0;

  // Serves until every client is gone: `control` is the server's end of a
  // socket pair through which clients send the server end of their own
  // connection (one datagram carrying one descriptor); `first` is an
  // already connected client. Takes ownership of both. Commits what is
  // left and returns.
  virtual void Serve(int control, int first) = 0;
};

}  // namespace cloister::runtime::shield
