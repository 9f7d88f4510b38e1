import Curl
import Dispatch
import Foundation
@testable import ObjectStore
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The S3 store against a real S3 server on 127.0.0.1 (moto, which checks every signature),
/// looked at through boto3; the file:// store on a temporary directory.
@Suite("S3Store", .serialized)
struct S3StoreTests {
    static func options(_ moto: MotoServer, secret: String? = nil) -> S3Options {
        var options = S3Options()
        options.endpoint = moto.endpoint
        options.region = "us-east-1"
        options.credentials = AWSCredentials(accessKeyID: moto.accessKey, secretAccessKey: secret ?? moto.secretKey)
        options.partSize = 5 << 20
        options.attempts = 3
        options.retryDelay = 0.2
        options.stallSeconds = 2
        return options
    }

    static func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        var state = UInt32(seed) &* 2_654_435_761 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    @Test func smallObjectsRoundTrip() throws {
        let moto = try MotoServer(authenticate: false)  // moto's check fails on '+', non-ASCII keys and "prefix=a/"
        try moto.inspector.createBucket("rast-objects")
        let store = try ObjectStores.open("s3://rast-objects/some/prefix", s3: S3StoreTests.options(moto))
        let keys = ["plain", "with space+plus", "dir/ünïcödé~.json", "dir/sub/deep"]
        for (index, key) in keys.enumerated() {
            try store.put(key, bytes: S3StoreTests.bytes(1000 + index, seed: UInt8(index)))
        }
        // What boto3 sees: the keys under the prefix, with their sizes.
        let seen = try moto.inspector.objects("rast-objects")
        #expect(seen == Dictionary(uniqueKeysWithValues: keys.enumerated().map { ("some/prefix/" + $0.element, 1000 + $0.offset) }))
        for (index, key) in keys.enumerated() {
            #expect(try store.get(key) == S3StoreTests.bytes(1000 + index, seed: UInt8(index)))
            #expect(try store.head(key) == ObjectInfo(key: key, size: Int64(1000 + index)))
        }
        #expect(try store.list(prefix: "dir/").map(\.key) == ["dir/sub/deep", "dir/ünïcödé~.json"])
        #expect(try store.list(prefix: "").count == 4)
        #expect(try store.head("missing") == nil)
        #expect(throws: ObjectStoreError.self) { try store.get("missing") }

        try store.delete("plain")
        try store.delete("plain")  // deleting what is gone is no error
        #expect(try moto.inspector.objects("rast-objects")["some/prefix/plain"] == nil)
    }

    @Test func multipartUploadInUnevenWrites() throws {
        let moto = try MotoServer()
        try moto.inspector.createBucket("rast-multipart")
        let store = try ObjectStores.open("s3://rast-multipart", s3: S3StoreTests.options(moto))
        let payload = S3StoreTests.bytes((12 << 20) + 12_345, seed: 7)  // three parts of 5 MiB, the last short
        let upload = try store.upload("big/object")
        try UnevenWrites.feed(payload, next: { $0 * 3 + 17 }, to: upload.write)
        #expect(try store.head("big/object") == nil)  // not there before completion
        #expect(try upload.complete() == Int64(payload.count))
        #expect(try moto.inspector.objects("rast-multipart") == ["big/object": payload.count])
        #expect(try moto.inspector.pendingUploads("rast-multipart").isEmpty)

        let scratch = try Scratch("rast-s3")
        try moto.inspector.download("rast-multipart", to: scratch.path)
        #expect(try Files.read(scratch.appending("big%2Fobject")) == payload)
        var streamed: [UInt8] = []
        var pieces = 0
        #expect(try store.get("big/object") { streamed.append(contentsOf: $0); pieces += 1 } == Int64(payload.count))
        #expect(streamed == payload)
        #expect(pieces > 1)
    }

    @Test func abortedAndAbandonedUploadsLeaveNothing() throws {
        let moto = try MotoServer(authenticate: false)  // moto's check fails on "prefix=p/"
        try moto.inspector.createBucket("rast-abort")
        let store = try ObjectStores.open("s3://rast-abort/p", s3: S3StoreTests.options(moto))
        let upload = try store.upload("half")
        try S3StoreTests.bytes(6 << 20).withUnsafeBytes { try upload.write($0) }  // one part is up
        #expect(try moto.inspector.pendingUploads("rast-abort") == ["p/half"])
        upload.abort()
        #expect(try moto.inspector.pendingUploads("rast-abort").isEmpty)
        #expect(try moto.inspector.objects("rast-abort").isEmpty)

        // An upload whose process died: only a listing of pending uploads finds it.
        _ = try Command("python3", ["-c", """
            import sys, boto3
            s3 = boto3.client("s3", endpoint_url=sys.argv[1])
            u = s3.create_multipart_upload(Bucket="rast-abort", Key="p/orphan")
            s3.upload_part(Bucket="rast-abort", Key="p/orphan", UploadId=u["UploadId"], PartNumber=1, Body=b"x" * 100)
            """, moto.endpoint], environment: moto.clientEnvironment).run()
        let pending = try store.pendingUploads(prefix: "")
        #expect(pending.map(\.key) == ["orphan"])
        for upload in pending { try store.abort(upload) }
        #expect(try moto.inspector.pendingUploads("rast-abort").isEmpty)
    }

    @Test func aWrongSecretIsRefusedByTheServer() throws {
        let moto = try MotoServer()
        try moto.inspector.createBucket("rast-auth")
        let store = try ObjectStores.open("s3://rast-auth", s3: S3StoreTests.options(moto, secret: "not-the-secret"))
        let error = try #require(throws: ObjectStoreError.self) { try store.put("x", bytes: [1, 2, 3]) }
        #expect("\(error)".contains("SignatureDoesNotMatch"))
        #expect("\(error)".hasPrefix("s3://rast-auth: upload x failed"))
        #expect(try moto.inspector.objects("rast-auth").isEmpty)
    }

    @Test func aStalledServerIsRetriedUntilItAnswers() throws {
        let moto = try MotoServer()
        try moto.inspector.createBucket("rast-stall")
        let store = try ObjectStores.open("s3://rast-stall", s3: S3StoreTests.options(moto))
        let pid = try #require(moto.processID)
        kill(pid, SIGSTOP)
        DispatchQueue.global().asyncAfter(deadline: .now() + 3) { kill(pid, SIGCONT) }
        let watch = Stopwatch()
        try store.put("after-stall", bytes: [4, 5, 6])
        #expect(watch.elapsed > 2)  // the first attempt stalled, a later one went through
        #expect(try moto.inspector.objects("rast-stall") == ["after-stall": 3])
    }

    @Test func aServerThatIsGoneFailsWithOneClearError() throws {
        let moto = try MotoServer()
        try moto.inspector.createBucket("rast-gone")
        let store = try ObjectStores.open("s3://rast-gone/x", s3: S3StoreTests.options(moto))
        moto.stop()
        let error = try #require(throws: ObjectStoreError.self) { try store.put("k", bytes: [1]) }
        let text = "\(error)"
        #expect(text.hasPrefix("s3://rast-gone/x: upload k failed after 3 attempts: "))
        #expect(text.contains("Connection refused"))
        #expect(error.underlying(CurlError.self)?.curlCode == 7)  // CURLE_COULDNT_CONNECT, carried as the cause
    }

    /// A download whose connection breaks goes on from the first byte not yet delivered
    /// (TestSupport's HTTP server stands in for S3: it drops the first answer after 1 MB and
    /// serves Range requests).
    @Test func aBrokenDownloadResumesWithoutRepeatingBytes() throws {
        let scratch = try Scratch("rast-s3-resume")
        let payload = S3StoreTests.bytes(3 << 20, seed: 3)
        try Files.createDirectory(scratch.appending("bucket/p"))
        try Files.writeAtomically(scratch.appending("bucket/p/object"), bytes: payload)
        let server = try HTTPServer(root: scratch.path)
        defer { server.stop() }
        server.setBehavior(.dropAfter(bytes: 1_000_000), for: "/bucket/p/object")
        var options = S3Options()
        options.endpoint = server.baseURL
        options.credentials = AWSCredentials(accessKeyID: "k", secretAccessKey: "s")
        options.retryDelay = 0.05
        let store = try ObjectStores.open("s3://bucket/p", s3: options)
        var received: [UInt8] = []
        #expect(try store.get("object") { received.append(contentsOf: $0) } == Int64(payload.count))
        #expect(received == payload)
        #expect(server.requests.map(\.range) == [nil, "bytes=1000000-"])
    }

    @Test func targetsAreChecked() throws {
        #expect(try ObjectStoreTarget.parse("s3://my-bucket/a/b/") == .s3(bucket: "my-bucket", prefix: "a/b/"))
        #expect(try ObjectStoreTarget.parse("s3://my-bucket") == .s3(bucket: "my-bucket", prefix: ""))
        #expect(try ObjectStoreTarget.parse("file:///var/backups/../backups/rast") == .file(directory: "/var/backups/rast"))
        for bad in ["s3://", "s3://UPPER/x", "file://relative/dir", "gs://bucket", "/plain/path", "file:///"] {
            let error = try #require(throws: ObjectStoreError.self) { try ObjectStoreTarget.parse(bad) }
            #expect("\(error)".hasPrefix("backup target '\(bad)': "))
        }
    }

    @Test func credentialsFromTheEnvironmentAndTheCredentialsFile() throws {
        let scratch = try Scratch("rast-aws")
        try Files.write(scratch.appending("credentials"), string: """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = secret/default
            # a comment
            [work]
            aws_access_key_id=AKIDWORK
            aws_secret_access_key=secretwork
            aws_session_token = token
            """)
        try Files.write(scratch.appending("config"), string: "[profile work]\nregion = eu-central-1\n")
        let files = ["AWS_SHARED_CREDENTIALS_FILE": scratch.appending("credentials"), "AWS_CONFIG_FILE": scratch.appending("config")]
        #expect(try AWSConfig.credentials(environment: files) == AWSCredentials(accessKeyID: "AKIDDEFAULT", secretAccessKey: "secret/default"))
        var work = files
        work["AWS_PROFILE"] = "work"
        #expect(try AWSConfig.credentials(environment: work) == AWSCredentials(accessKeyID: "AKIDWORK", secretAccessKey: "secretwork", sessionToken: "token"))
        #expect(AWSConfig.region(environment: work) == "eu-central-1")
        #expect(AWSConfig.region(environment: files) == "us-east-1")
        work["AWS_ACCESS_KEY_ID"] = "AKIDENV"
        work["AWS_SECRET_ACCESS_KEY"] = "envsecret"
        work["AWS_REGION"] = "ap-south-1"
        #expect(try AWSConfig.credentials(environment: work) == AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "envsecret"))
        #expect(AWSConfig.region(environment: work) == "ap-south-1")
        var missing = files
        missing["AWS_PROFILE"] = "nope"
        let error = try #require(throws: ObjectStoreError.self) { try AWSConfig.credentials(environment: missing) }
        #expect("\(error)".contains("has no profile [nope]"))
    }
}

@Suite("FileStore")
struct FileStoreTests {
    @Test func objectsAreFilesAndUploadsAppearWhole() throws {
        let scratch = try Scratch("rast-filestore")
        let store = try ObjectStores.open("file://" + scratch.appending("store"))
        try store.put("a/b/c", bytes: [1, 2, 3])
        try store.put("top", bytes: [9])
        #expect(try Files.read(scratch.appending("store/a/b/c")) == [1, 2, 3])
        #expect(try store.list(prefix: "").map(\.key) == ["a/b/c", "top"])
        #expect(try store.list(prefix: "a/").map(\.key) == ["a/b/c"])

        let upload = try store.upload("a/streamed")
        try [UInt8](repeating: 7, count: 100_000).withUnsafeBytes { try upload.write($0) }
        #expect(try store.head("a/streamed") == nil)
        #expect(try store.pendingUploads(prefix: "a/").map(\.key) == ["a/streamed"])
        #expect(try upload.complete() == 100_000)
        #expect(try store.head("a/streamed")?.size == 100_000)
        #expect(try store.pendingUploads(prefix: "").isEmpty)

        let abandoned = try store.upload("a/abandoned")
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try abandoned.write($0) }
        abandoned.abort()
        #expect(try store.head("a/abandoned") == nil)
        #expect(try store.pendingUploads(prefix: "").isEmpty)

        try store.delete("a/b/c")
        #expect(!Files.exists(scratch.appending("store/a/b")))  // emptied directories go
        #expect(throws: ObjectStoreError.self) { try store.put("../escape", bytes: [1]) }
        #expect(throws: ObjectStoreError.self) { try store.put(".uploads/x", bytes: [1]) }
    }
}

/// The reader of S3's answers decodes what the writer of requests escapes.
@Suite("S3 XML")
struct XMLTests {
    @Test func entitiesAreDecodedAndEscaped() throws {
        let answer = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult><Contents><Key>a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#x263A;&#65; &nbsp; &amp</Key></Contents></ListBucketResult>
            """
        let document = try #require(XMLElement.parse(Array(answer.utf8)))
        // Unknown entities stay as they are, and so does an "&" without ";".
        #expect(document.all("Contents").first?.value("Key") == "a&b <c> \"d\" 'e' ☺A &nbsp; &amp")
        #expect(decodeEntities("a&b") == "a&b")  // the text before a lone "&" came twice
        #expect(escapeXML("\"a&b\" <'c'> ☺") == "&quot;a&amp;b&quot; &lt;&apos;c&apos;&gt; ☺")
        #expect(decodeEntities(escapeXML("\"a&b\" <'c'> ☺")) == "\"a&b\" <'c'> ☺")
    }
}
