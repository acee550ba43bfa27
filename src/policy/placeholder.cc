// Placeholders ($$CLOISTER::name[:format]$$), the formats each secret kind
// offers, and the shell-like splitting of a `command` string. Pure string
// code: no YAML, no secrets.
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace cloister::policy {
namespace {

constexpr std::string_view kOpen = "$$CLOISTER::";
constexpr std::string_view kClose = "$$";
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxFormatLength = 32;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool IsFormatChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// Formats by kind, the default first.
constexpr std::string_view kTextFormats[] = {"raw", "hex", "base64"};
constexpr std::string_view kBinaryFormats[] = {"hex", "base64", "raw"};
constexpr std::string_view kKeyFormats[] = {"pem", "public-pem"};
constexpr std::string_view kCertFormats[] = {"cert", "chain", "privatekey", "public-pem"};
constexpr std::string_view kAllFormats[] = {"raw", "hex", "base64", "pem", "cert", "chain", "privatekey", "public-pem"};

std::string Offset(size_t i) { return "at byte " + std::to_string(i); }

}  // namespace

std::span<const std::string_view> FormatsOf(SecretKind kind) {
  switch (kind) {
    case SecretKind::kAscii:
    case SecretKind::kExplicit:
      return kTextFormats;
    case SecretKind::kBinary:
      return kBinaryFormats;
    case SecretKind::kPrivateKey:
      return kKeyFormats;
    case SecretKind::kX509Ca:
    case SecretKind::kX509:
      return kCertFormats;
    case SecretKind::kImported:
      break;
  }
  return kAllFormats;
}

std::string_view DefaultFormat(SecretKind kind) {
  return kind == SecretKind::kImported ? std::string_view() : FormatsOf(kind)[0];
}

bool FormatApplies(SecretKind kind, std::string_view format) {
  if (format.empty()) return true;
  for (std::string_view f : FormatsOf(kind)) {
    if (f == format) return true;
  }
  return false;
}

StatusOr<std::vector<Placeholder>> FindPlaceholders(std::string_view s) {
  std::vector<Placeholder> out;
  size_t from = 0;
  while (true) {
    size_t begin = s.find(kOpen, from);
    if (begin == std::string_view::npos) break;
    size_t i = begin + kOpen.size();
    size_t name_begin = i;
    while (i < s.size() && IsNameChar(s[i])) ++i;
    if (i == name_begin) {
      return InvalidArgument("ill-formed placeholder " + Offset(begin) + ": no secret name after $$CLOISTER::");
    }
    if (i - name_begin > kMaxNameLength) {
      return InvalidArgument("ill-formed placeholder " + Offset(begin) + ": the secret name is longer than " +
                             std::to_string(kMaxNameLength) + " characters");
    }
    Placeholder p;
    p.begin = begin;
    p.secret = std::string(s.substr(name_begin, i - name_begin));
    if (i < s.size() && s[i] == ':') {
      size_t format_begin = ++i;
      while (i < s.size() && IsFormatChar(s[i])) ++i;
      if (i == format_begin || i - format_begin > kMaxFormatLength) {
        return InvalidArgument("ill-formed placeholder " + Offset(begin) + ": expected a format after ':'");
      }
      p.format = std::string(s.substr(format_begin, i - format_begin));
      if (!FormatApplies(SecretKind::kImported, p.format)) {
        std::string known;
        for (std::string_view f : kAllFormats) known += (known.empty() ? "" : ", ") + std::string(f);
        return InvalidArgument("ill-formed placeholder " + Offset(begin) + ": unknown format '" + p.format +
                               "' (formats: " + known + ")");
      }
    }
    if (s.substr(i, kClose.size()) != kClose) {
      return InvalidArgument("ill-formed placeholder " + Offset(begin) + ": expected '$$' after the secret name" +
                             (p.format.empty() ? "" : " and format") + " (names are letters, digits, '_' and '-')");
    }
    p.end = i + kClose.size();
    from = p.end;
    out.push_back(std::move(p));
  }
  return out;
}

StatusOr<std::vector<std::string>> SplitCommand(std::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;  // true once a character or a quote pair was seen
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      ++i;
    } else if (c == '\\') {
      if (i + 1 == s.size()) return InvalidArgument("the command ends with a lone backslash");
      if (s[i + 1] != '\n') {  // backslash-newline joins lines
        word += s[i + 1];
        in_word = true;
      }
      i += 2;
    } else if (c == '\'') {
      size_t close = s.find('\'', i + 1);
      if (close == std::string_view::npos) {
        return InvalidArgument("unterminated single quote " + Offset(i) + " of the command");
      }
      word.append(s.substr(i + 1, close - i - 1));
      in_word = true;
      i = close + 1;
    } else if (c == '"') {
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= s.size()) return InvalidArgument("unterminated double quote " + Offset(i) + " of the command");
        char d = s[j];
        if (d == '"') break;
        if (d == '\\' && j + 1 < s.size()) {
          char e = s[j + 1];
          if (e == '"' || e == '\\' || e == '$' || e == '`') {
            word += e;
            ++j;
            continue;
          }
          if (e == '\n') {
            ++j;
            continue;
          }
        }
        word += d;
      }
      in_word = true;
      i = j + 1;
    } else {
      word += c;
      in_word = true;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace cloister::policy
