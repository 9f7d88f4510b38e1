import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// One libcurl easy handle with its error buffer: what `CurlTransfer` (downloads) and
/// `HTTPClient` (requests) share. `reset()` before each transfer sets the error buffer and the
/// options every transfer gets (no signals, the allowed protocols); the typed setters turn a
/// failed `curl_easy_setopt` into a `CurlError.setup`.
/// Not for use from several threads at once.
final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws {
        let initCode = curlGlobalInit
        guard initCode == CURLE_OK.rawValue else {
            throw CurlError.setup(function: "curl_global_init", code: Int(initCode), message: curlMessage(initCode))
        }
        guard let handle = curl_easy_init() else {
            throw CurlError.setup(function: "curl_easy_init", code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "out of memory")
        }
        raw = handle
        errorBuffer = .allocate(capacity: RAST_CURL_ERROR_SIZE)
        errorBuffer.initialize(repeating: 0, count: RAST_CURL_ERROR_SIZE)
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// Forgets the previous transfer's options (connections stay open) and sets `url`, the
    /// error buffer, no signals and the protocols allowed.
    func reset(url: String, protocols: String) throws {
        curl_easy_reset(raw)
        errorBuffer[0] = 0
        try set(CURLOPT_URL, url)
        try set(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_PROTOCOLS_STR, protocols)
    }

    /// The request headers as a libcurl list, freed when `body` returns.
    func withHeaders<T>(_ lines: [String], _ body: () throws -> T) throws -> T {
        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        for line in lines {
            guard let appended = curl_slist_append(list, line) else {
                throw CurlError.setup(function: "curl_slist_append", code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "out of memory")
            }
            list = appended
        }
        if let list { try set(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list)) }
        return try body()
    }

    /// The error of a failed `curl_easy_perform`: libcurl's detailed message, with the
    /// system's reason ("Connection refused") that libcurl leaves out.
    func transferError(_ url: String, _ code: CURLcode) -> CurlError {
        let buffered = String(cString: errorBuffer)
        var message = buffered.isEmpty ? curlMessage(code.rawValue) : buffered
        let systemErrno = Int32(truncatingIfNeeded: long(CURLINFO_OS_ERRNO))
        if systemErrno != 0 {
            let reason = String(cString: strerror(systemErrno))
            if !message.contains(reason) { message += " (\(reason))" }
        }
        return .transfer(url: url, code: Int(code.rawValue), message: message)
    }

    func check(_ function: String, _ code: CURLcode) throws {
        guard code == CURLE_OK else {
            throw CurlError.setup(function: function, code: Int(code.rawValue), message: curlMessage(code.rawValue))
        }
    }

    func set(_ option: CURLoption, _ value: Int) throws {
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_long(raw, option, value))
    }

    func set(_ option: CURLoption, _ value: String) throws {
        // libcurl copies string options (since 7.17), so the temporary C string may go.
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_string(raw, option, value))
    }

    func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer) throws {
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_pointer(raw, option, value))
    }

    func set(_ option: CURLoption, offset: UInt64) throws {
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_offset(raw, option, curl_off_t(offset)))
    }

    /// The write, read or header callback `option` names.
    func set(_ option: CURLoption, callback: rast_curl_data_callback) throws {
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_data_callback(raw, option, callback))
    }

    /// Hands the body and the header lines of the next transfer to `receiver`, which the
    /// caller keeps alive until `curl_easy_perform` returns.
    func receive(into receiver: some TransferReceiver) throws {
        let context = Unmanaged.passUnretained(receiver as AnyObject).toOpaque()
        try set(CURLOPT_WRITEFUNCTION, callback: receiverWriteCallback)
        try set(CURLOPT_WRITEDATA, context)
        try set(CURLOPT_HEADERFUNCTION, callback: receiverHeaderCallback)
        try set(CURLOPT_HEADERDATA, context)
    }

    /// An integer after a transfer (0 when libcurl has none).
    func long(_ info: CURLINFO) -> Int {
        var value = 0
        return rast_curl_get_long(raw, info, &value) == CURLE_OK ? value : 0
    }

    func string(_ info: CURLINFO) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard rast_curl_get_string(raw, info, &value) == CURLE_OK, let value else { return nil }
        return String(cString: value)
    }
}

/// What a transfer's write and header callbacks hand on: the body's bytes and each header
/// line. libcurl only learns that a callback failed, so the error it threw waits in
/// `callbackError` for the caller of `curl_easy_perform`.
protocol TransferReceiver: AnyObject {
    var callbackError: Error? { get set }
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func header(_ line: String)
}

private func receiver(_ context: UnsafeMutableRawPointer?) -> (any TransferReceiver)? {
    guard let context else { return nil }
    return Unmanaged<AnyObject>.fromOpaque(context).takeUnretainedValue() as? any TransferReceiver
}

private func receiverWriteCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                   _ context: UnsafeMutableRawPointer?) -> Int {
    guard let receiver = receiver(context) else { return 0 }
    let length = size * count
    do {
        try receiver.write(UnsafeRawBufferPointer(start: data, count: length))
        return length
    } catch {
        receiver.callbackError = error
        return 0  // anything but `length` makes libcurl stop with CURLE_WRITE_ERROR
    }
}

private func receiverHeaderCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                    _ context: UnsafeMutableRawPointer?) -> Int {
    guard let data, let receiver = receiver(context) else { return 0 }
    let length = size * count
    receiver.header(String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self))
    return length
}

/// curl_global_init, exactly once per process (a global is initialised thread-safely).
private let curlGlobalInit: UInt32 = rast_curl_global_init().rawValue

func curlMessage(_ code: UInt32) -> String {
    String(cString: curl_easy_strerror(CURLcode(rawValue: code)))
}
