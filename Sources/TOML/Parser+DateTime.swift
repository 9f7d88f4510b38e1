/// Offset and local date-times, dates and times (RFC 3339 with TOML's relaxations).
extension Parser {
    // MARK: Dates and times

    mutating func parseDateTime() throws(TOMLError) -> TOMLValue {
        let start = here
        let s = i
        func number(_ count: Int) -> Int? {
            guard isDigits(i, count) else { return nil }
            var value = 0
            for k in i..<(i + count) { value = value * 10 + Int(b[k] - 0x30) }
            i += count
            return value
        }
        func invalid(_ reason: String) -> TOMLError {
            var end = i
            while end < b.count, !ASCII.endsValue(b[end]) { end += 1 }
            let text = String(decoding: b[s..<max(end, i)], as: UTF8.self)
            return error("invalid date-time '\(text)': \(reason)", at: start)
        }
        func expect(_ byte: UInt8, _ reason: String) throws(TOMLError) {
            guard peek() == byte else { throw invalid(reason) }
            i += 1
        }

        var year = 0, month = 0, day = 0
        var hasDate = false
        if peek(4) == ASCII.minus {
            guard let y = number(4) else { throw invalid("expected YYYY-MM-DD") }
            try expect(ASCII.minus, "expected YYYY-MM-DD")
            guard let m = number(2) else { throw invalid("expected YYYY-MM-DD") }
            try expect(ASCII.minus, "expected YYYY-MM-DD")
            guard let d = number(2) else { throw invalid("expected YYYY-MM-DD") }
            guard (1...12).contains(m) else { throw invalid("month \(m) does not exist") }
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
            guard (1...days).contains(d) else { throw invalid("day \(d) does not exist in month \(m) of \(y)") }
            year = y; month = m; day = d
            hasDate = true
            // The time follows after 'T', 't' or a single space.
            if let c = peek(), c == 0x54 || c == 0x74 {
                i += 1
            } else if peek() == ASCII.space, isDigits(i + 1, 2), peek(3) == ASCII.colon {
                i += 1
            } else {
                if let c = peek(), !ASCII.endsValue(c) { throw invalid("unexpected \(found()) after the date") }
                let text = String(decoding: b[s..<i], as: UTF8.self)
                return .dateTime(TOMLDateTime(kind: .localDate, text: text, year: year, month: month, day: day), start)
            }
        }

        guard let hour = number(2) else { throw invalid("expected HH:MM:SS") }
        try expect(ASCII.colon, "expected HH:MM:SS")
        guard let minute = number(2) else { throw invalid("expected HH:MM:SS") }
        try expect(ASCII.colon, "expected HH:MM:SS (seconds are required)")
        guard let second = number(2) else { throw invalid("expected HH:MM:SS") }
        guard hour < 24 else { throw invalid("hour \(hour) does not exist") }
        guard minute < 60 else { throw invalid("minute \(minute) does not exist") }
        guard second < 60 else { throw invalid("second \(second) does not exist") }
        var nanosecond = 0
        if peek() == ASCII.dot {
            i += 1
            var count = 0
            while let c = peek(), ASCII.isDigit(c) {
                if count < 9 { nanosecond = nanosecond * 10 + Int(c - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { throw invalid("a decimal point must be followed by digits") }
            for _ in count..<max(count, 9) { nanosecond *= 10 }
        }
        var offset: Int?
        if hasDate {
            if let c = peek(), c == 0x5A || c == 0x7A {
                i += 1
                offset = 0
            } else if let c = peek(), c == ASCII.plus || c == ASCII.minus {
                i += 1
                guard let oh = number(2) else { throw invalid("expected an offset +HH:MM") }
                try expect(ASCII.colon, "expected an offset +HH:MM")
                guard let om = number(2) else { throw invalid("expected an offset +HH:MM") }
                guard oh < 24, om < 60 else { throw invalid("offset \(oh):\(om) does not exist") }
                offset = (oh * 60 + om) * (c == ASCII.minus ? -1 : 1)
            }
        }
        if let c = peek(), !ASCII.endsValue(c) {
            throw invalid("unexpected \(found())")
        }
        let text = String(decoding: b[s..<i], as: UTF8.self)
        let kind: TOMLDateTime.Kind = !hasDate ? .localTime : offset == nil ? .localDateTime : .offsetDateTime
        return .dateTime(TOMLDateTime(kind: kind, text: text, year: year, month: month, day: day, hour: hour,
                                      minute: minute, second: second, nanosecond: nanosecond,
                                      offsetMinutes: offset), start)
    }
}
