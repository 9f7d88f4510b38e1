import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// One libcurl easy handle and the error buffer libcurl writes its messages into, owned and
/// freed here. `CurlTransfer` and `HTTPClient` each hold one and reuse it, so connections stay
/// open. Not for use from several threads at once.
final class EasyHandle {
    let pointer: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws {
        let initCode = curlGlobalInit
        guard initCode == CURLE_OK.rawValue else {
            throw CurlError.setup(function: "curl_global_init", code: Int(initCode), message: curlMessage(initCode))
        }
        guard let handle = curl_easy_init() else {
            throw CurlError.setup(function: "curl_easy_init", code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "out of memory")
        }
        pointer = handle
        errorBuffer = .allocate(capacity: RAST_CURL_ERROR_SIZE)
        errorBuffer.initialize(repeating: 0, count: RAST_CURL_ERROR_SIZE)
    }

    deinit {
        curl_easy_cleanup(pointer)
        errorBuffer.deallocate()
    }

    /// Forgets the options and the message of the previous transfer (the connections stay) and
    /// installs the error buffer again.
    func reset() throws {
        curl_easy_reset(pointer)
        errorBuffer[0] = 0
        try set(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
    }

    /// A failed transfer of `url`: libcurl's message (the error buffer's, else the code's),
    /// with the system's reason ("Connection refused") when libcurl's leaves it out.
    func transferError(_ url: String, _ code: CURLcode) -> CurlError {
        let buffered = String(cString: errorBuffer)
        var message = buffered.isEmpty ? curlMessage(code.rawValue) : buffered
        let systemErrno = Int32(truncatingIfNeeded: getLong(CURLINFO_OS_ERRNO))
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
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_long(pointer, option, value))
    }

    func set(_ option: CURLoption, _ value: String) throws {
        // libcurl copies string options (since 7.17), so the temporary C string may go.
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_string(pointer, option, value))
    }

    func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer) throws {
        try check("curl_easy_setopt(\(option.rawValue))", rast_curl_set_pointer(pointer, option, value))
    }

    func getLong(_ info: CURLINFO) -> Int {
        var value = 0
        return rast_curl_get_long(pointer, info, &value) == CURLE_OK ? value : 0
    }

    func getString(_ info: CURLINFO) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard rast_curl_get_string(pointer, info, &value) == CURLE_OK, let value else { return nil }
        return String(cString: value)
    }
}

/// curl_global_init, exactly once per process (a global is initialised thread-safely).
private let curlGlobalInit: UInt32 = rast_curl_global_init().rawValue

func curlMessage(_ code: UInt32) -> String {
    String(cString: curl_easy_strerror(CURLcode(rawValue: code)))
}
