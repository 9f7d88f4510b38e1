// Where S3 credentials and the region come from, in the order the AWS tools use:
//   AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) in the environment, else
//   the profile AWS_PROFILE (or "default") of AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials);
//   the region from AWS_REGION, AWS_DEFAULT_REGION, the profile in AWS_CONFIG_FILE
//   (~/.aws/config, section "[profile NAME]" or "[default]"), else us-east-1.
import Foundation
import SystemSupport

package enum AWSConfig {
    package static func credentials(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AWSCredentials {
        if let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty {
            guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw ObjectStoreError.noCredentials("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
        }
        let profile = self.profile(environment)
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home(environment) + "/.aws/credentials"
        guard Files.exists(path) else {
            throw ObjectStoreError.noCredentials("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to \(path) (profile [\(profile)])")
        }
        let sections = try parseINI(path)
        guard let section = sections[profile] else {
            throw ObjectStoreError.noCredentials("\(path) has no profile [\(profile)]")
        }
        guard let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
            throw ObjectStoreError.noCredentials("profile [\(profile)] in \(path) lacks aws_access_key_id or aws_secret_access_key")
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    package static func region(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let value = environment[name], !value.isEmpty { return value }
        }
        let profile = self.profile(environment)
        let path = environment["AWS_CONFIG_FILE"] ?? home(environment) + "/.aws/config"
        if let sections = try? parseINI(path) {
            let section = profile == "default" ? sections["default"] : (sections["profile \(profile)"] ?? sections[profile])
            if let region = section?["region"], !region.isEmpty { return region }
        }
        return "us-east-1"
    }

    static func profile(_ environment: [String: String]) -> String {
        environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
    }

    static func home(_ environment: [String: String]) -> String {
        environment["HOME"] ?? NSHomeDirectory()
    }

    /// "[section]" headers and "key = value" lines; '#' and ';' start comments.
    static func parseINI(_ path: String) throws -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for raw in try Files.readString(path).split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = value
        }
        return sections
    }
}
