// The runtime's side of a relayed attestation (docs/protocol.md section 6):
// the LAS brought back the CAS's signed reply; this checks that the CAS
// made it for this very start and opens the grant sealed to this start's
// key. Nothing the LAS could have changed gets past it.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/cas_client.h"
#include "runtime/config.h"
#include "runtime/result.h"

namespace cloister::runtime {

// The CAS's reply as if it had come over TLS: the status, and the body
// ParseCasReply reads (the opened grant for 200, the refusal otherwise).
// Fails, naming what was wrong, when the reply is malformed, signed by
// another key than settings.cas_key, made for another key or config id, or
// when the grant does not open with identity.key.
Result<HttpResponse> OpenRelayedReply(std::span<const uint8_t> cas_reply, const Settings& settings,
                                      const ClientIdentity& identity);

}  // namespace cloister::runtime
