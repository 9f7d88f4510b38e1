// AWS Signature Version 4 (header-based), as S3 and every S3-compatible store (MinIO, Ceph
// RGW, GCS's XML API with HMAC keys) check it:
//
//   CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
//                      SignedHeaders \n HexSHA256(payload)
//   StringToSign     = "AWS4-HMAC-SHA256" \n AMZ-DATE \n SCOPE \n HexSHA256(CanonicalRequest)
//   SCOPE            = DATE/REGION/SERVICE/aws4_request
//   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, DATE), REGION), SERVICE), "aws4_request")
//   Signature        = Hex(HMAC(SigningKey, StringToSign))
//
// Paths and query items are given decoded and encoded here once (S3 does not normalise or
// double-encode paths). Tested against AWS's Signature Version 4 test suite.
import Foundation
import SystemSupport

/// Credentials for signing: an access key, its secret, and a session token for temporary ones.
package struct AWSCredentials: Sendable, Equatable {
    package var accessKeyID: String
    package var secretAccessKey: String
    package var sessionToken: String?
}

/// Signs requests for one service in one region.
package struct SigV4Signer: Sendable {
    package let credentials: AWSCredentials
    package let region: String
    package let service: String

    package init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// What goes into a signature, kept for tests and RAST_DEBUG.
    package struct Signature: Sendable {
        package let canonicalRequest: String
        package let stringToSign: String
        package let signedHeaders: String
        package let signature: String
        package let authorization: String
    }

    /// The signature of a request. `headers` are the headers to sign (Host among them,
    /// X-Amz-Date carrying `date`); `payloadHash` is the hex SHA-256 of the body (or
    /// "UNSIGNED-PAYLOAD").
    package func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                     payloadHash: String, date: Date) -> Signature {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        let canonicalHeaders = SigV4Signer.canonicalHeaders(headers)
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let canonicalRequest = [
            method,
            SigV4Signer.encodePath(path),
            SigV4Signer.canonicalQuery(query),
            canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SHA256.hash(canonicalRequest)].joined(separator: "\n")
        var key = HMACSHA256.authenticate(day, key: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [region, service, "aws4_request"] { key = HMACSHA256.authenticate(part, key: key) }
        let signature = Hex.encode(HMACSHA256.authenticate(stringToSign, key: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signedHeaders: signedHeaders,
                         signature: signature, authorization: authorization)
    }

    /// "20150830T123600Z" and "20150830" (UTC).
    package static func timestamps(_ date: Date) -> (amzDate: String, day: String) {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        let day = String(format: "%04d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
        return (day + String(format: "T%02d%02d%02dZ", Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)), day)
    }

    /// Lowercase names, sorted; values trimmed with inner runs of spaces collapsed; the values
    /// of repeated headers joined with commas in their order.
    static func canonicalHeaders(_ headers: [(String, String)]) -> [(name: String, value: String)] {
        var values: [String: [String]] = [:]
        var order: [String] = []
        for (name, value) in headers {
            let lower = name.lowercased()
            if values[lower] == nil { order.append(lower) }
            let trimmed = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            values[lower, default: []].append(trimmed)
        }
        return order.sorted().map { ($0, values[$0, default: []].joined(separator: ",")) }
    }

    static func canonicalQuery(_ query: [(String, String)]) -> String {
        encodedQuery(query).map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Names and values encoded, sorted by name, then value.
    static func encodedQuery(_ query: [(String, String)]) -> [(name: String, value: String)] {
        let encoded: [(name: String, value: String)] = query.map { (name: encode($0.0), value: encode($0.1)) }
        return encoded.sorted { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
    }

    /// Percent-encodes everything but the unreserved characters (RFC 3986), UTF-8, uppercase hex.
    package static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    package static func encodePath(_ path: String) -> String {
        path.isEmpty ? "/" : encode(path, keepSlash: true)
    }
}
