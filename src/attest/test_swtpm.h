// Tests only: a software TPM (swtpm) on a loopback port, in a temporary
// directory, driven with tpm2-tools, for the tests that run credential
// activation and quotes against a TPM (src/attest/tpm_quote_test.cc,
// src/cas/node_evidence_test.cc, src/las/node_evidence_test.cc). Such tests
// skip, saying so, when Swtpm::Missing() names a tool that is not installed.
#pragma once

#include <arpa/inet.h>
#include <stdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "base/bytes.h"

extern char** environ;

namespace cloister::attest::testing {

// swtpm with tpm2-tools on a loopback port, in a temporary directory; the
// TPM process ends with the object.
class Swtpm {
 public:
  // The first tool missing for Start(error, with_ek_certificate), or "".
  static std::string Missing(bool with_ek_certificate = false) {
    for (const char* tool : {"swtpm", "tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_activatecredential",
                             "tpm2_startauthsession", "tpm2_policysecret", "tpm2_flushcontext"}) {
      if (!Installed(tool)) return tool;
    }
    if (with_ek_certificate) {
      for (const char* tool : {"swtpm_setup", "swtpm_localca", "certtool"}) {
        if (!Installed(tool)) return tool;
      }
    }
    return "";
  }

  ~Swtpm() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Starts swtpm; false (with `error`) if it does not come up. With
  // `with_ek_certificate` the TPM is first manufactured by swtpm_setup with
  // an RSA EK certificate in NV from a local CA (swtpm_localca), whose root
  // and issuer certificates are then in Path("ca").
  bool Start(std::string& error, bool with_ek_certificate = false) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cloister-swtpm-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      error = "mkdtemp failed";
      return false;
    }
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/state");
    if (with_ek_certificate && !Manufacture(error)) return false;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePortPair();
      if (port_ == 0) continue;
      std::string server = "type=tcp,port=" + std::to_string(port_) + ",bindaddr=127.0.0.1";
      std::string ctrl = "type=tcp,port=" + std::to_string(port_ + 1) + ",bindaddr=127.0.0.1";
      std::string state = "dir=" + dir_ + "/state";
      std::string log = "file=" + dir_ + "/swtpm.log";
      std::vector<std::string> args = {"swtpm",   "socket", "--tpm2",  "--server", server, "--ctrl", ctrl,
                                       "--tpmstate", state, "--log", log, "--flags", "not-need-init,startup-clear"};
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      if (posix_spawnp(&pid_, "swtpm", nullptr, nullptr, argv.data(), environ) != 0) {
        pid_ = 0;
        error = "cannot start swtpm";
        return false;
      }
      for (int i = 0; i < 200; ++i) {  // up to 2 s
        if (Connects(port_)) return true;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = 0;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
        pid_ = 0;
      }
    }
    error = "swtpm did not come up";
    return false;
  }

  // The TCTI configuration of this TPM, and a file in its directory.
  std::string Tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Runs a tpm2-tools command line in the directory against this TPM;
  // its output goes to tools.log there. True on exit status 0.
  bool Run(const std::string& command) {
    std::string line = "cd '" + dir_ + "' && TPM2TOOLS_TCTI='swtpm:host=127.0.0.1,port=" + std::to_string(port_) +
                       "' " + command + " >>tools.log 2>&1";
    return std::system(line.c_str()) == 0;
  }
  // Runs a tpm2-tools command; its standard output, or "" when it failed.
  std::string Output(const std::string& command) {
    if (!Run(command + " >tool.out")) return "";
    Bytes out = Read("tool.out");
    return std::string(out.begin(), out.end());
  }
  // Runs and then flushes transient objects (no resource manager here).
  bool RunAndFlush(const std::string& command) { return Run(command) && Run("tpm2_flushcontext -t"); }

  Bytes Read(const std::string& name) const {
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  void Write(const std::string& name, const Bytes& data) const {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  std::string Log() const {
    Bytes b = Read("tools.log");
    return std::string(b.begin(), b.end());
  }

 private:
  static bool Installed(const char* tool) {
    std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
  }
  static std::string Which(const char* tool) {
    std::string cmd = std::string("command -v ") + tool;
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[512] = {};
      if (fgets(buf, sizeof(buf), p) != nullptr) out = buf;
      pclose(p);
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  void WriteText(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ + "/" + name) << text;
  }
  // swtpm_setup with swtpm_localca as its certificate tool, all in dir_.
  bool Manufacture(std::string& error) {
    std::filesystem::create_directories(dir_ + "/ca");
    WriteText("localca.conf", "statedir = " + dir_ + "/ca\nsigningkey = " + dir_ + "/ca/signkey.pem\nissuercert = " +
                                  dir_ + "/ca/issuercert.pem\ncertserial = " + dir_ + "/ca/certserial\n");
    WriteText("localca.options", "--platform-manufacturer Cloister\n--platform-version 2.1\n--platform-model test\n");
    WriteText("setup.conf", "create_certs_tool = " + Which("swtpm_localca") + "\ncreate_certs_tool_config = " + dir_ +
                                "/localca.conf\ncreate_certs_tool_options = " + dir_ +
                                "/localca.options\nactive_pcr_banks = sha256\n");
    std::string setup = "swtpm_setup --tpm2 --tpmstate '" + dir_ + "/state' --create-ek-cert --config '" + dir_ +
                        "/setup.conf' --logfile '" + dir_ + "/setup.log' >/dev/null 2>&1";
    if (std::system(setup.c_str()) == 0) return true;
    Bytes log = Read("setup.log");
    error = "swtpm_setup failed: " + std::string(log.begin(), log.end());
    return false;
  }
  static int Bind(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      if (fd >= 0) close(fd);
      return -1;
    }
    return fd;
  }
  // A port P with P+1 free too (swtpm's control channel).
  static int FreePortPair() {
    int fd = Bind(0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    int port = ntohs(a.sin_port);
    int next = port < 65535 ? Bind(port + 1) : -1;
    close(fd);
    if (next < 0) return 0;
    close(next);
    return port;
  }
  static bool Connects(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    if (fd >= 0) close(fd);
    return ok;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

// tpm2-tools' credential file (what tpm2_activatecredential -i reads): BE
// magic 0xBADCC0DE, BE version 1, then the TPM2B_ID_OBJECT and the
// TPM2B_ENCRYPTED_SECRET, each with its u16 size.
inline Bytes ToolsCredentialFile(const Bytes& credential_blob, const Bytes& encrypted_secret) {
  Bytes f = {0xBA, 0xDC, 0xC0, 0xDE, 0, 0, 0, 1};
  f.insert(f.end(), credential_blob.begin(), credential_blob.end());
  f.insert(f.end(), encrypted_secret.begin(), encrypted_secret.end());
  return f;
}

}  // namespace cloister::attest::testing
