import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real S3 server on 127.0.0.1: moto's `moto_server` (PyPI `moto[server]`, pinned and
/// installed by `make deps`) on a free port, in memory, stopped (and reaped) by `stop()` or
/// when the value goes. Authentication is enforced (INITIAL_NO_AUTH_ACTION_COUNT): the
/// server checks every request's Signature V4 against the secret of an IAM user created at
/// start, so a wrong signature fails as it would on AWS. moto 5.2's own check is wrong for
/// keys with '+' or non-ASCII characters and for query values with '/' (boto3's requests
/// fail it the same way), so tests of such requests use `authenticate: false`. `S3Inspector` looks at what it
/// stores through boto3, a client independent of ours.
package final class MotoServer {
    package let port: UInt16
    package var endpoint: String { "http://127.0.0.1:\(port)" }
    private var process: PipedProcess?
    package private(set) var accessKey = ""
    package private(set) var secretKey = ""

    private let authenticate: Bool

    package init(authenticate: Bool = true) throws {
        guard Command.find("moto_server") != nil else {
            throw MissingRequirement(description: "this test needs moto_server (PyPI moto[server], pinned in the Makefile); `make deps` installs it with pip")
        }
        self.authenticate = authenticate
        port = try MotoServer.start(into: &process, port: nil, authenticate: authenticate)
        try createUser()
    }

    /// The three unauthenticated actions moto allows: a user, its access key, a policy.
    private func createUser() throws {
        guard authenticate else {
            accessKey = "rast-test-key"
            secretKey = "rast-test-secret"
            return
        }
        let script = """
            import sys, json, boto3
            iam = boto3.client("iam", endpoint_url=sys.argv[1], aws_access_key_id="setup", aws_secret_access_key="setup", region_name="us-east-1")
            iam.create_user(UserName="rast")
            key = iam.create_access_key(UserName="rast")["AccessKey"]
            iam.put_user_policy(UserName="rast", PolicyName="all", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            print(key["AccessKeyId"], key["SecretAccessKey"])
            """
        let words = try Command("python3", ["-c", script, endpoint]).output().split(separator: " ")
        guard words.count == 2 else { throw MissingRequirement(description: "could not create moto's IAM user: \(words)") }
        accessKey = String(words[0])
        secretKey = String(words[1])
    }

    /// Starts moto on `port` (a free one when nil) and waits until it answers.
    private static func start(into process: inout PipedProcess?, port wanted: UInt16?, authenticate: Bool) throws -> UInt16 {
        let port: UInt16
        if let wanted {
            port = wanted
        } else {
            let (fd, free) = try LoopbackListener.listeningSocket()
            close(fd)
            port = free
        }
        let child = try PipedProcess(Command("moto_server", ["-H", "127.0.0.1", "-p", String(port)],
                                             environment: authenticate ? ["INITIAL_NO_AUTH_ACTION_COUNT": "3"] : [:]), pipe: .standardInput)
        process = child
        let deadline = Stopwatch.now() + 30
        while Stopwatch.now() < deadline {
            if !child.isRunning {
                let ended = (try? child.finish()).map { "exited with \($0.status)" } ?? "failed"
                throw MissingRequirement(description: "moto_server on 127.0.0.1:\(port) \(ended) before it answered")
            }
            let probe = try Command("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/moto-api/"])
                .run(check: false)
            if probe.status == 0, probe.standardOutput != "000" { return port }
            usleep(100_000)
        }
        throw MissingRequirement(description: "moto_server did not answer on 127.0.0.1:\(port) within 30 s")
    }

    /// The server's process id, for tests that stop or kill it mid-transfer.
    package var processID: pid_t? { process?.processID }

    /// Starts the server again on the same port (empty: moto keeps everything in memory),
    /// with a new user (`accessKey`, `secretKey`).
    package func restart() throws {
        process?.terminate()
        process = nil
        _ = try MotoServer.start(into: &process, port: port, authenticate: authenticate)
        try createUser()
    }

    package func stop() {
        process?.terminate()
        process = nil
    }

    deinit { stop() }

    /// The environment that points the AWS tools (boto3, aws) at this server.
    package var clientEnvironment: [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey,
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint]
    }

    package var inspector: S3Inspector { S3Inspector(endpoint: endpoint, environment: clientEnvironment) }
}

/// boto3, run as `python3 -c`, looking at a bucket: the client a user would check with.
package struct S3Inspector: Sendable {
    package let endpoint: String
    package let environment: [String: String]

    private func python(_ script: String, _ arguments: [String]) throws -> String {
        let preamble = """
            import sys, json, boto3
            s3 = boto3.client("s3", endpoint_url=sys.argv[1])

            """
        return try Command("python3", ["-c", preamble + script, endpoint] + arguments, environment: environment).output()
    }

    package func createBucket(_ bucket: String) throws {
        _ = try python("s3.create_bucket(Bucket=sys.argv[2])", [bucket])
    }

    /// Every object's key and size.
    package func objects(_ bucket: String, prefix: String = "") throws -> [String: Int] {
        let text = try python("""
            out = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
                for o in page.get("Contents", []):
                    out[o["Key"]] = o["Size"]
            print(json.dumps(out))
            """, [bucket, prefix])
        return try JSONDecoder().decode([String: Int].self, from: Data(text.utf8))
    }

    /// Downloads every object below `prefix` into `directory` (keys' "/" become "%2F").
    package func download(_ bucket: String, prefix: String = "", to directory: String) throws {
        _ = try python("""
            import os, urllib.parse
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
                for o in page.get("Contents", []):
                    s3.download_file(sys.argv[2], o["Key"], os.path.join(sys.argv[4], o["Key"].replace("/", "%2F")))
            """, [bucket, prefix, directory])
    }

    /// Replaces an object's content.
    package func put(_ bucket: String, key: String, from path: String) throws {
        _ = try python("s3.upload_file(sys.argv[4], sys.argv[2], sys.argv[3])", [bucket, key, path])
    }

    package func delete(_ bucket: String, key: String) throws {
        _ = try python("s3.delete_object(Bucket=sys.argv[2], Key=sys.argv[3])", [bucket, key])
    }

    /// Waits (polling in one python process) until a multipart upload is pending whose key
    /// is not in `known`; returns its key, or nil after `timeout` seconds or when `stop`
    /// (checked between polls, from the file it names existing) says so.
    package func waitForPendingUpload(_ bucket: String, besides known: [String], timeout: Double, stopFile: String) throws -> String? {
        let text = try python("""
            import os, time
            known, deadline = set(json.loads(sys.argv[3])), time.time() + float(sys.argv[4])
            while time.time() < deadline and not os.path.exists(sys.argv[5]):
                new = [u["Key"] for u in s3.list_multipart_uploads(Bucket=sys.argv[2]).get("Uploads", []) if u["Key"] not in known]
                if new:
                    print(new[0]); break
                time.sleep(0.01)
            """, [bucket, String(decoding: try JSONEncoder().encode(known), as: UTF8.self), String(timeout), stopFile])
        return text.isEmpty ? nil : text
    }

    /// Multipart uploads started and neither completed nor aborted: their keys.
    package func pendingUploads(_ bucket: String) throws -> [String] {
        let text = try python("""
            r = s3.list_multipart_uploads(Bucket=sys.argv[2])
            print(json.dumps([u["Key"] for u in r.get("Uploads", [])]))
            """, [bucket])
        return try JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}
