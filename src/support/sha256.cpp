#include "support/sha256.h"

#include "support/error.h"

#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <string>
#include <memory>
#include <vector>

namespace switchyard {

namespace {

std::string hex(const unsigned char * digest, unsigned int length) {
    std::string out;
    char byte[3];
    for (unsigned int i = 0; i < length; ++i) {
        std::snprintf(byte, sizeof byte, "%02x", digest[i]);
        out += byte;
    }
    return out;
}

}  // namespace

std::string sha256_bytes(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr);
    return hex(digest.data(), length);
}

std::string sha256_file(const std::filesystem::path & path, std::uint64_t offset) {
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> in(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!in) throw Error("{}: cannot open to compute its sha256", path.string());
    if (offset > 0 && fseeko(in.get(), static_cast<off_t>(offset), SEEK_SET) != 0)
        throw Error("{}: cannot seek to byte {}", path.string(), offset);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
    std::vector<unsigned char> buffer(1 << 20);
    std::size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), in.get())) > 0)
        EVP_DigestUpdate(md.get(), buffer.data(), n);
    if (std::ferror(in.get())) throw Error("{}: read error while computing its sha256", path.string());
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(md.get(), digest.data(), &length);
    return hex(digest.data(), length);
}

}  // namespace switchyard
