import Testing
@testable import TOML
import TestSupport

/// Parses a document named "t.toml".
func parse(_ text: String) throws -> TOMLTable {
    try TOMLDocument.parse(text, file: "t.toml")
}

/// The error a document gives; a test failure if it parses.
func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> TOMLError? {
    do {
        let table = try TOMLDocument.parse(text, file: "t.toml")
        Issue.record("expected an error, parsed \(table.keys)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

func at(_ line: Int, _ column: Int) -> TOMLPosition {
    TOMLPosition(file: "t.toml", line: line, column: column)
}

@Suite struct KeyTests {
    @Test func bareQuotedAndDottedKeysWithPositions() throws {
        let doc = try parse("""
            # a comment line
            title = "TOML" # trailing comment
            "quoted key" = 1
            'literal key' = 2
            a.b.c = true
            a . "d" . e = 'x'
            1234 = "digits"
            "" = "empty"
            bare-key_2 = 3
            """)
        #expect(doc.keys == ["title", "quoted key", "literal key", "a", "1234", "", "bare-key_2"])
        #expect(doc.entry("title")?.keyPosition == at(2, 1))
        #expect(doc["title"]?.position == at(2, 9))
        #expect(doc["title"]?.string == "TOML")
        #expect(doc.entry("quoted key")?.keyPosition == at(3, 1))
        #expect(doc["quoted key"]?.integer == 1)
        #expect(doc["literal key"]?.position == at(4, 17))
        let a = try #require(doc["a"]?.table)
        #expect(a.origin == .dottedKeys)
        #expect(a.position == at(5, 1))
        #expect(a.keys == ["b", "d"])
        let b = try #require(a["b"]?.table)
        #expect(a.entry("b")?.keyPosition == at(5, 3))
        #expect(b.entry("c")?.keyPosition == at(5, 5))
        #expect(b["c"]?.boolean == true)
        #expect(b["c"]?.position == at(5, 9))
        let d = try #require(a["d"]?.table)
        #expect(a.entry("d")?.keyPosition == at(6, 5))
        #expect(d.entry("e")?.keyPosition == at(6, 11))
        #expect(d["e"]?.string == "x")
        #expect(doc["1234"]?.string == "digits")
        #expect(doc[""]?.string == "empty")
        #expect(doc["bare-key_2"]?.integer == 3)
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let doc = try parse("\"é\" = \"ü\"\n\tk = 1")
        #expect(doc.entry("é")?.keyPosition == at(1, 1))
        #expect(doc["é"]?.position == at(1, 7))
        #expect(doc.entry("k")?.keyPosition == at(2, 2))
    }

    @Test func crlfByteOrderMarkAndEmptyDocuments() throws {
        let doc = try parse("\u{FEFF}a = 1\r\nb = \"x\"\r\n# c\r\n")
        #expect(doc.entry("a")?.keyPosition == at(1, 1))
        #expect(doc.entry("b")?.keyPosition == at(2, 1))
        #expect(doc["b"]?.string == "x")
        #expect(try parse("").isEmpty)
        #expect(try parse("# only a comment\n\n   \n").isEmpty)
        #expect(try parse("").position == at(1, 1))
        #expect(try parse("").origin == .document)
    }
}

@Suite struct StringTests {
    @Test func basicStringEscapes() throws {
        let doc = try parse(#"""
            s = "tab\there \"quoted\" back\\slash\nnew\rcr\bbs\fff"
            u = "\u00E9\U0001F600\u0041"
            tabs = "a	b"
            """#)
        #expect(doc["s"]?.string == "tab\there \"quoted\" back\\slash\nnew\rcr\u{8}bs\u{C}ff")
        #expect(doc["u"]?.string == "é😀A")
        #expect(doc["tabs"]?.string == "a\tb")
    }

    @Test func literalStrings() throws {
        let doc = try parse(#"""
            path = 'C:\Users\nodejs\templates'
            quoted = 'Tom "Dubs" Preston-Werner'
            regex = '<\i\c*\s*>'
            """#)
        #expect(doc["path"]?.string == #"C:\Users\nodejs\templates"#)
        #expect(doc["quoted"]?.string == #"Tom "Dubs" Preston-Werner"#)
        #expect(doc["regex"]?.string == #"<\i\c*\s*>"#)
    }

    @Test func multilineBasicStrings() throws {
        let doc = try parse(#"""
            first = """
            Roses are red
            Violets are blue"""
            folded = """\
                   The quick brown \
                   fox jumps over \
                   the lazy dog.\
                   """
            quotes = """Here are two quotation marks: "". Simple enough."""
            ending = """"This," she said, "is just a pointless statement.""""
            escaped = """a\tb \u0041"""
            after = 1
            """#)
        #expect(doc["first"]?.string == "Roses are red\nViolets are blue")
        #expect(doc["folded"]?.string == "The quick brown fox jumps over the lazy dog.")
        #expect(doc["quotes"]?.string == #"Here are two quotation marks: "". Simple enough."#)
        #expect(doc["ending"]?.string == #""This," she said, "is just a pointless statement.""#)
        #expect(doc["escaped"]?.string == "a\tb A")
        #expect(doc["first"]?.position == at(1, 9))
        // Lines inside multi-line strings are counted.
        #expect(doc.entry("folded")?.keyPosition == at(4, 1))
        #expect(doc.entry("after")?.keyPosition == at(12, 1))
    }

    @Test func multilineLiteralStringsAndCRLF() throws {
        let doc = try parse("lines = '''\r\nThe first newline is\r\ntrimmed in raw strings.\r\n   All other whitespace\r\n   is preserved.\r\n'''\r\nq = '''It's '' here'''''\nafter = 1")
        #expect(doc["lines"]?.string == "The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n")
        #expect(doc["q"]?.string == "It's '' here''")
        #expect(doc.entry("after")?.keyPosition == at(8, 1))
    }
}

@Suite struct NumberTests {
    @Test func integers() throws {
        let doc = try parse("""
            i1 = +99
            i2 = 42
            i3 = 0
            i4 = -17
            i5 = 1_000
            i6 = 5_349_221
            z1 = +0
            z2 = -0
            h1 = 0xDEADBEEF
            h2 = 0xdead_beef
            o1 = 0o755
            b1 = 0b1101_0110
            max = 9223372036854775807
            min = -9223372036854775808
            hmax = 0x7FFFFFFFFFFFFFFF
            """)
        let expected: [(String, Int64)] = [
            ("i1", 99), ("i2", 42), ("i3", 0), ("i4", -17), ("i5", 1000), ("i6", 5_349_221),
            ("z1", 0), ("z2", 0), ("h1", 0xDEADBEEF), ("h2", 0xDEADBEEF), ("o1", 0o755),
            ("b1", 0b1101_0110), ("max", Int64.max), ("min", Int64.min), ("hmax", Int64.max),
        ]
        for (key, value) in expected {
            #expect(doc[key]?.integer == value, "\(key)")
        }
        #expect(doc["i1"]?.position == at(1, 6))
        #expect(doc["i1"]?.typeDescription == "an integer")
    }

    @Test func floats() throws {
        let doc = try parse("""
            f1 = +1.0
            f2 = 3.1415
            f3 = -0.01
            f4 = 5e+22
            f5 = 1e06
            f6 = -2E-2
            f7 = 6.626e-34
            f8 = 224_617.445_991_228
            f9 = 0e0
            sf1 = inf
            sf2 = +inf
            sf3 = -inf
            sf4 = nan
            sf5 = -nan
            """)
        let expected: [(String, Double)] = [
            ("f1", 1.0), ("f2", 3.1415), ("f3", -0.01), ("f4", 5e22), ("f5", 1e6), ("f6", -0.02),
            ("f7", 6.626e-34), ("f8", 224_617.445_991_228), ("f9", 0),
            ("sf1", .infinity), ("sf2", .infinity), ("sf3", -.infinity),
        ]
        for (key, value) in expected {
            #expect(doc[key]?.float == value, "\(key)")
        }
        #expect(doc["sf4"]?.float?.isNaN == true)
        #expect(doc["sf5"]?.float?.isNaN == true)
        #expect(doc["f1"]?.typeName == "float")
    }

    @Test func booleans() throws {
        let doc = try parse("t = true\nf = false\na = [true,false]")
        #expect(doc["t"]?.boolean == true)
        #expect(doc["f"]?.boolean == false)
        #expect(doc["a"]?.array?.compactMap(\.boolean) == [true, false])
    }
}

@Suite struct DateTimeTests {
    @Test func allFourKinds() throws {
        let doc = try parse("""
            odt1 = 1979-05-27T07:32:00Z
            odt2 = 1979-05-27T00:32:00-07:00
            odt3 = 1979-05-27T00:32:00.999999+05:30
            odt4 = 1979-05-27 07:32:00z
            ldt1 = 1979-05-27T07:32:00
            ldt2 = 1979-05-27t00:32:00.5
            ld = 2024-02-29
            lt1 = 07:32:00
            lt2 = 00:32:00.123456789123
            arr = [1979-05-27, 07:32:00]
            """)
        let odt1 = try #require(doc["odt1"]?.dateTime)
        #expect(odt1.kind == .offsetDateTime)
        #expect(odt1.text == "1979-05-27T07:32:00Z")
        #expect((odt1.year, odt1.month, odt1.day, odt1.hour, odt1.minute, odt1.second) == (1979, 5, 27, 7, 32, 0))
        #expect(odt1.offsetMinutes == 0)
        #expect(doc["odt2"]?.dateTime?.offsetMinutes == -420)
        let odt3 = try #require(doc["odt3"]?.dateTime)
        #expect(odt3.nanosecond == 999_999_000)
        #expect(odt3.offsetMinutes == 330)
        #expect(doc["odt4"]?.dateTime?.text == "1979-05-27 07:32:00z")
        #expect(doc["odt4"]?.dateTime?.kind == .offsetDateTime)
        #expect(doc["ldt1"]?.dateTime?.kind == .localDateTime)
        #expect(doc["ldt2"]?.dateTime?.nanosecond == 500_000_000)
        let ld = try #require(doc["ld"]?.dateTime)
        #expect(ld.kind == .localDate)
        #expect((ld.year, ld.month, ld.day) == (2024, 2, 29))
        #expect(doc["lt1"]?.dateTime?.kind == .localTime)
        #expect(doc["lt2"]?.dateTime?.nanosecond == 123_456_789)
        #expect(doc["lt2"]?.typeDescription == "a local time")
        #expect(doc["arr"]?.array?.compactMap(\.dateTime?.kind) == [.localDate, .localTime])
        #expect(doc["ld"]?.position == at(7, 6))
    }
}

@Suite struct ArrayAndInlineTableTests {
    @Test func arrays() throws {
        let doc = try parse("""
            integers = [ 1, 2, 3 ]
            colors = [ "red", 'yellow', \"""green\""" ]
            nested = [ [ 1, 2 ], ["a", 'b', "c"] ]
            mixed = [ 0.1, 1, "x", { a = 1 }, [] ]
            empty = []
            multi = [
              1, # one
              # a whole comment line
              2,
            ]
            """)
        #expect(doc["integers"]?.array?.compactMap(\.integer) == [1, 2, 3])
        #expect(doc["colors"]?.array?.compactMap(\.string) == ["red", "yellow", "green"])
        let nested = try #require(doc["nested"]?.array)
        #expect(nested[1].array?.compactMap(\.string) == ["a", "b", "c"])
        #expect(nested[1].position == at(3, 22))
        let mixed = try #require(doc["mixed"]?.array)
        #expect(mixed.map(\.typeName) == ["float", "integer", "string", "table", "array"])
        #expect(mixed[3].table?.origin == .inline)
        #expect(doc["empty"]?.array?.isEmpty == true)
        let multi = try #require(doc["multi"]?.array)
        #expect(multi.compactMap(\.integer) == [1, 2])
        #expect(multi[1].position == at(9, 3))
        #expect(doc["multi"]?.position == at(6, 9))
    }

    @Test func inlineTables() throws {
        let doc = try parse("""
            name = { first = "Tom", last = "Preston-Werner" }
            point = {x=1,y=2}
            animal = { type.name = "pug", type.size = 1 }
            empty = {}
            nested = { a = { b = [ { c = 1 } ] } }
            """)
        let name = try #require(doc["name"]?.table)
        #expect(name.origin == .inline)
        #expect(name.position == at(1, 8))
        #expect(name.keys == ["first", "last"])
        #expect(name.entry("last")?.keyPosition == at(1, 25))
        #expect(doc["point"]?.table?["y"]?.integer == 2)
        let type = try #require(doc["animal"]?.table?["type"]?.table)
        #expect(type.origin == .inline)
        #expect(type["name"]?.string == "pug")
        #expect(type["size"]?.integer == 1)
        #expect(doc["empty"]?.table?.isEmpty == true)
        let c = doc["nested"]?.table?["a"]?.table?["b"]?.array?.first?.table?["c"]
        #expect(c?.integer == 1)
        #expect(c?.position == at(5, 30))
    }
}

@Suite struct TableTests {
    @Test func headersSubtablesAndSuperTablesDefinedLater() throws {
        let doc = try parse("""
            [x.y.z.w]
            k = 1

            [x] # defining a super-table afterwards is fine
            v = 2

            [ dog . "tater.man" ]
            type.name = "pug"

            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]  # a sub-table of a table defined by dotted keys
            smooth = true
            """)
        let x = try #require(doc["x"]?.table)
        #expect(x.origin == .header)
        #expect(x.position == at(4, 1))
        #expect(doc.entry("x")?.keyPosition == at(1, 2))
        #expect(x["v"]?.integer == 2)
        let y = try #require(x["y"]?.table)
        #expect(y.origin == .implicit)
        let w = try #require(y["z"]?.table?["w"]?.table)
        #expect(w.origin == .header)
        #expect(w.position == at(1, 1))
        #expect(w["k"]?.integer == 1)
        let tater = try #require(doc["dog"]?.table?["tater.man"]?.table)
        #expect(tater["type"]?.table?["name"]?.string == "pug")
        #expect(doc["dog"]?.table?.entry("tater.man")?.keyPosition == at(7, 9))
        let apple = try #require(doc["fruit"]?.table?["apple"]?.table)
        #expect(apple.origin == .dottedKeys)
        #expect(apple.keys == ["color", "taste", "texture"])
        #expect(apple["texture"]?.table?["smooth"]?.boolean == true)
        #expect(apple["texture"]?.table?.origin == .header)
    }

    @Test func arraysOfTables() throws {
        let doc = try parse("""
            [[products]]
            name = "Hammer"
            sku = 738594937

            [[products]]  # empty table within the array

            [[products]]
            name = "Nail"

            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"
            [[fruits.varieties]]
            name = "red delicious"
            [[fruits.varieties]]
            name = "granny smith"

            [[fruits]]
            name = "banana"
            [[fruits.varieties]]
            name = "plantain"
            """)
        let products = try #require(doc["products"]?.array)
        #expect(products.count == 3)
        #expect(products.map(\.position) == [at(1, 1), at(5, 1), at(7, 1)])
        #expect(products[0].table?.origin == .arrayOfTablesElement)
        #expect(products[1].table?.isEmpty == true)
        #expect(products[2].table?["name"]?.string == "Nail")
        #expect(doc["products"]?.position == at(1, 1))
        #expect(doc.entry("products")?.keyPosition == at(1, 3))
        let fruits = try #require(doc["fruits"]?.array)
        #expect(fruits.count == 2)
        let apple = try #require(fruits[0].table)
        #expect(apple["physical"]?.table?["color"]?.string == "red")
        #expect(apple["varieties"]?.array?.compactMap { $0.table?["name"]?.string } == ["red delicious", "granny smith"])
        #expect(fruits[1].table?["varieties"]?.array?.first?.table?["name"]?.string == "plantain")
        #expect(fruits[1].table?["varieties"]?.array?.first?.position == at(21, 1))
    }

    @Test func dottedKeysMayExtendTablesCreatedImplicitlyByHeaders() throws {
        let doc = try parse("""
            [a.b.c]
            z = 1
            [a]
            b.x = 2
            """)
        let b = try #require(doc["a"]?.table?["b"]?.table)
        #expect(b.keys == ["c", "x"])
        #expect(b["x"]?.integer == 2)
    }
}

/// Every kind of invalid document, with the exact position and message.
@Suite struct InvalidDocumentTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let document: String
        let line: Int
        let column: Int
        let message: String
        var testDescription: String { message }
    }

    static let cases: [Case] = [
        // Keys and key/value pairs.
        Case(document: "name \"minimal\"", line: 1, column: 6, message: "expected '=' after key 'name', found '\"'"),
        Case(document: "name: minimal", line: 1, column: 5, message: "expected '=' after key 'name', found ':'"),
        Case(document: "= 1", line: 1, column: 1, message: "expected a key, found '='"),
        Case(document: "a. = 1", line: 1, column: 4, message: "expected a key after '.', found '='"),
        Case(document: "a =", line: 1, column: 4, message: "expected a value for key 'a', found end of file"),
        Case(document: "a = # nothing", line: 1, column: 5, message: "expected a value for key 'a', found '#'"),
        Case(document: "a = 1 b = 2", line: 1, column: 7, message: "expected a newline after the value of key 'a', found 'b'"),
        Case(document: "\"\"\"k\"\"\" = 1", line: 1, column: 1, message: "a multi-line string cannot be used as a key"),
        Case(document: "a = 1\nb = 2\na = 3", line: 3, column: 1, message: "duplicate key 'a' (first defined at 1:1)"),
        Case(document: "a = 1\n\"a\" = 2", line: 2, column: 1, message: "duplicate key 'a' (first defined at 1:1)"),
        Case(document: "a.b = 1\na.b = 2", line: 2, column: 3, message: "duplicate key 'a.b' (first defined at 1:3)"),
        Case(document: "[system]\nhostname = \"a\"\nhostname = \"b\"", line: 3, column: 1, message: "duplicate key 'hostname' (first defined at 2:1)"),
        Case(document: "a = 1\na.b = 2", line: 2, column: 1, message: "key 'a' is already defined as an integer at 1:1"),
        // Strings.
        Case(document: "s = \"abc", line: 1, column: 5, message: "unterminated string"),
        Case(document: "s = 'abc", line: 1, column: 5, message: "unterminated string"),
        Case(document: "s = \"abc\ndef\"", line: 1, column: 5, message: "unterminated string (a \"...\" string must end on its line; use \"\"\" for multi-line strings)"),
        Case(document: "s = 'abc\ndef'", line: 1, column: 5, message: "unterminated string (a '...' string must end on its line; use ''' for multi-line strings)"),
        Case(document: "x = 1\ns = \"\"\"abc\n\ndef", line: 2, column: 5, message: "unterminated multi-line string"),
        Case(document: "s = '''abc", line: 1, column: 5, message: "unterminated multi-line string"),
        Case(document: "s = \"a\\qb\"", line: 1, column: 7, message: "invalid escape sequence '\\q'"),
        Case(document: "s = \"\\uD800\"", line: 1, column: 6, message: "escape \\uD800 is not a Unicode scalar value"),
        Case(document: "s = \"\\U00110000\"", line: 1, column: 6, message: "escape \\U00110000 is not a Unicode scalar value"),
        Case(document: "s = \"\\u12\"", line: 1, column: 6, message: "escape \\u needs 4 hexadecimal digits"),
        Case(document: "s = \"a\u{01}b\"", line: 1, column: 7, message: "control character U+0001 must be escaped in a string"),
        Case(document: "s = 'a\u{7F}b'", line: 1, column: 7, message: "control character U+007F is not allowed in a literal string"),
        Case(document: "s = \"\"\"a\"\"\"\"\"\"", line: 1, column: 9, message: "too many quotes: a multi-line string may end with at most two quotes before its closing delimiter"),
        // Comments and newlines.
        Case(document: "a = 1 # bad \u{02} char", line: 1, column: 13, message: "control character U+0002 is not allowed in a comment"),
        Case(document: "a = 1\rb = 2", line: 1, column: 6, message: "a carriage return must be followed by a line feed"),
        // Numbers.
        Case(document: "n = 01", line: 1, column: 5, message: "invalid number '01': leading zeros are not allowed"),
        Case(document: "n = 1__0", line: 1, column: 5, message: "invalid number '1__0': underscores must be between digits"),
        Case(document: "n = 1_", line: 1, column: 5, message: "invalid number '1_': underscores must be between digits"),
        Case(document: "n = +0x10", line: 1, column: 5, message: "invalid number '+0x10': hexadecimal integers cannot have a sign"),
        Case(document: "n = 0xG1", line: 1, column: 5, message: "invalid number '0xG1': 'G' is not a hexadecimal digit"),
        Case(document: "n = 0o8", line: 1, column: 5, message: "invalid number '0o8': '8' is not an octal digit"),
        Case(document: "n = 0b", line: 1, column: 5, message: "invalid number '0b': no digits after the prefix"),
        Case(document: "n = 9223372036854775808", line: 1, column: 5, message: "integer '9223372036854775808' does not fit in 64 bits"),
        Case(document: "n = 0x8000000000000000", line: 1, column: 5, message: "integer '0x8000000000000000' does not fit in 64 bits"),
        Case(document: "n = 12abc", line: 1, column: 5, message: "invalid number '12abc': unexpected 'abc'"),
        Case(document: "f = 1.", line: 1, column: 5, message: "invalid number '1.': a decimal point must be followed by digits"),
        Case(document: "f = .5", line: 1, column: 5, message: "invalid number '.5': a float needs digits before the decimal point"),
        Case(document: "f = 1e", line: 1, column: 5, message: "invalid number '1e': an exponent needs digits"),
        Case(document: "f = 1.5.2", line: 1, column: 5, message: "invalid number '1.5.2': unexpected '.2'"),
        Case(document: "f = 1e400", line: 1, column: 5, message: "float '1e400' is out of range"),
        Case(document: "b = tru", line: 1, column: 5, message: "invalid value 'tru': strings must be quoted (\"tru\")"),
        Case(document: "name = minimal", line: 1, column: 8, message: "invalid value 'minimal': strings must be quoted (\"minimal\")"),
        // Dates and times.
        Case(document: "d = 2023-02-29", line: 1, column: 5, message: "invalid date-time '2023-02-29': day 29 does not exist in month 2 of 2023"),
        Case(document: "d = 2023-13-01", line: 1, column: 5, message: "invalid date-time '2023-13-01': month 13 does not exist"),
        Case(document: "t = 24:00:00", line: 1, column: 5, message: "invalid date-time '24:00:00': hour 24 does not exist"),
        Case(document: "t = 12:00", line: 1, column: 5, message: "invalid date-time '12:00': expected HH:MM:SS (seconds are required)"),
        Case(document: "d = 1979-05-27T07:32:00+25:00", line: 1, column: 5, message: "invalid date-time '1979-05-27T07:32:00+25:00': offset 25:0 does not exist"),
        Case(document: "d = 1979-05-27T07:32:00Zjunk", line: 1, column: 5, message: "invalid date-time '1979-05-27T07:32:00Zjunk': unexpected 'j'"),
        Case(document: "d = 1979-05-27T07:32", line: 1, column: 5, message: "invalid date-time '1979-05-27T07:32': expected HH:MM:SS (seconds are required)"),
        // Arrays.
        Case(document: "a = [1, 2", line: 1, column: 10, message: "unterminated array (opened at 1:5)"),
        Case(document: "a = [1 2]", line: 1, column: 8, message: "expected ',' or ']' in array, found '2'"),
        Case(document: "a = [,]", line: 1, column: 6, message: "expected a value or ']' in array, found ','"),
        Case(document: "a = [1,,2]", line: 1, column: 8, message: "expected a value after ',' in array, found ','"),
        // Inline tables.
        Case(document: "t = {a = 1,}", line: 1, column: 12, message: "a trailing comma is not allowed in an inline table"),
        Case(document: "t = {a = 1\n}", line: 1, column: 11, message: "an inline table must be on one line; expected ',' or '}', found end of line"),
        Case(document: "t = {\na = 1}", line: 1, column: 6, message: "an inline table must be on one line; expected a key or '}', found end of line"),
        Case(document: "t = {a = 1 b = 2}", line: 1, column: 12, message: "expected ',' or '}' in inline table, found 'b'"),
        Case(document: "t = {a = 1, a = 2}", line: 1, column: 13, message: "duplicate key 'a' (first defined at 1:6)"),
        Case(document: "t = {a = 1}\nt.b = 2", line: 2, column: 1, message: "cannot add to inline table 't' (defined at 1:5): inline tables are complete where they are written"),
        Case(document: "t = {a = 1}\n[t]", line: 2, column: 1, message: "table [t] is already defined as an inline table at 1:5"),
        Case(document: "t = {a = 1}\n[t.b]", line: 2, column: 2, message: "cannot extend inline table 't' (defined at 1:5)"),
        Case(document: "t = {a = {b = 1}}\n[t.a.c]", line: 2, column: 2, message: "cannot extend inline table 't' (defined at 1:5)"),
        // Tables and arrays of tables.
        Case(document: "[a]\nx = 1\n[a]", line: 3, column: 1, message: "table [a] is already defined at 1:1"),
        Case(document: "[a.b]\n[a]\n[a]", line: 3, column: 1, message: "table [a] is already defined at 2:1"),
        Case(document: "a.b = 1\n[a]", line: 2, column: 1, message: "table [a] is already defined by dotted keys at 1:1"),
        Case(document: "[x]\na.b = 1\n[x.a]", line: 3, column: 1, message: "table [x.a] is already defined by dotted keys at 2:1"),
        Case(document: "[a.b.c]\nz = 9\n[a]\nb.c.t = 1", line: 4, column: 3, message: "cannot add to table 'b.c' with dotted keys: it is defined by the table header at 1:1"),
        Case(document: "[a.b.c]\n[a]\nb.x = 1\n[a.b]", line: 4, column: 1, message: "table [a.b] is already defined by dotted keys at 1:4"),
        Case(document: "[a]\nb = 1\n[a.b]", line: 3, column: 4, message: "key 'a.b' is already defined as an integer at 2:1, not a table"),
        Case(document: "a = [1]\n[[a]]", line: 2, column: 3, message: "cannot append to static array 'a' (defined at 1:1) with [[a]]"),
        Case(document: "a = [1]\n[a.b]", line: 2, column: 2, message: "cannot extend static array 'a' (defined at 1:1); only arrays of tables ([[a]]) can be extended"),
        Case(document: "[[a]]\n[a]", line: 2, column: 1, message: "table [a] conflicts with the array of tables [[a]] defined at 1:1"),
        Case(document: "[a]\n[[a]]", line: 2, column: 3, message: "cannot define array of tables [[a]]: 'a' is already a table defined at 1:1"),
        Case(document: "[[a]]\nb.c = 1\n[[a]]\nb.c = 1\nb.c = 2", line: 5, column: 3, message: "duplicate key 'b.c' (first defined at 4:3)"),
        Case(document: "[a", line: 1, column: 3, message: "expected ']' to close the table header [a, found end of file"),
        Case(document: "[a b]", line: 1, column: 4, message: "expected ']' to close the table header [a, found 'b'"),
        Case(document: "[[a]", line: 1, column: 4, message: "expected ']]' to close the array of tables header [[a, found ']' followed by end of file"),
        Case(document: "[]", line: 1, column: 2, message: "expected a key, found ']'"),
        Case(document: "[a] x = 1", line: 1, column: 5, message: "expected a newline after the table header [a], found 'x'"),
    ]

    @Test(arguments: cases)
    func rejected(_ c: Case) {
        guard let error = failure(c.document) else { return }
        #expect(error.message == c.message)
        #expect(error.position == at(c.line, c.column), "\(error)")
        #expect(error.description == "t.toml:\(c.line):\(c.column): \(c.message)")
    }

    @Test func errorsNameTheKeyTheyConcern() {
        #expect(failure("[system]\nhostname = \"x\nlocale = 1")?.key == "system.hostname")
        #expect(failure("[a.b]\nc = [1 2]")?.key == "a.b.c")
        #expect(failure("t = { x = 01 }")?.key == "t.x")
        #expect(failure("[a]\n[a]")?.key == "a")
    }

    @Test func invalidUTF8IsReportedWithItsPosition() {
        let bytes: [UInt8] = Array("a = 1\nb = \"x".utf8) + [0xC3, 0x28] + Array("\"".utf8)
        do {
            _ = try TOMLDocument.parse(bytes: bytes, file: "t.toml")
            Issue.record("parsed invalid UTF-8")
        } catch {
            #expect(error.position == at(2, 7))
            #expect(error.message == "invalid UTF-8 (byte 0xC3); a TOML document must be UTF-8 text")
            #expect(error.key == "b", "the error names the key whose value holds the byte")
        }
        // Inside a table's value, an array element and a comment.
        func keyOfBadByte(_ before: String, _ after: String = "\"") -> String? {
            do {
                _ = try TOMLDocument.parse(bytes: Array(before.utf8) + [0xFF] + Array(after.utf8), file: "t.toml")
                return "parsed"
            } catch {
                return error.key
            }
        }
        #expect(keyOfBadByte("[system]\nhostname = \"ab") == "system.hostname")
        #expect(keyOfBadByte("[packages]\ninstall = [\"a\", \"b") == "packages.install")
        #expect(keyOfBadByte("a = 1 # note ", "\n") == nil)
        // Overlong encodings and surrogates are not UTF-8 either.
        #expect(TOMLDocument.firstInvalidUTF8([0x61, 0xC0, 0xAF]) == 1)
        #expect(TOMLDocument.firstInvalidUTF8([0xED, 0xA0, 0x80]) == 0)
        #expect(TOMLDocument.firstInvalidUTF8(Array("é😀".utf8)) == nil)
    }

    @Test func bytesAndTextGiveTheSameDocument() throws {
        let text = "[a]\nb = \"é\"\n"
        let fromBytes = try TOMLDocument.parse(bytes: Array(text.utf8), file: "t.toml")
        #expect(fromBytes["a"]?.table?["b"]?.string == "é")
        #expect(fromBytes["a"]?.table?["b"]?.position == at(2, 5))
    }
}

@Suite struct LimitTests {
    @Test func deepNestingIsAnErrorNotACrash() throws {
        let depth = TOMLDocument.maximumDepth
        // At the limit: accepted.
        let ok = "a = " + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1)
        #expect(try parse(ok)["a"] != nil)
        let arrays = "a = " + String(repeating: "[", count: 100_000)
        let arrayError = failure(arrays)
        #expect(arrayError?.message == "arrays and tables are nested deeper than \(depth) levels")
        #expect(arrayError?.position == at(1, 4 + depth))
        let tables = "a = " + String(repeating: "{b = ", count: 100_000)
        #expect(failure(tables)?.message == "arrays and tables are nested deeper than \(depth) levels")
        let header = "[" + Array(repeating: "a", count: 10_000).joined(separator: ".") + "]"
        #expect(failure(header)?.message == "table header [\(Array(repeating: "a", count: 10_000).joined(separator: "."))] nests tables deeper than \(depth) levels")
        let dotted = Array(repeating: "k", count: 10_000).joined(separator: ".") + " = 1"
        #expect(failure(dotted)?.message.hasSuffix("nests tables deeper than \(depth) levels") == true)
    }

    /// Parsing must stay linear in the document's size. Measured as a ratio (the best of three
    /// runs of 40,000 lines against the best of three of 80,000), not against a wall-clock limit:
    /// a loaded machine slows both sides alike, while quadratic work would make the ratio ~4.
    @Test func largeDocumentsParseInLinearTime() throws {
        func document(_ count: Int) -> String {
            var text = ""
            for n in 0..<count {
                text += "[[item]]\nname = \"item \(n)\"\nsize = \(n)\ntags = [\"a\", \"b\", { k = \(n) }]\n"
            }
            return text
        }
        let small = document(10_000), large = document(20_000)
        let clock = ContinuousClock()
        func best(_ text: String) throws -> Duration {
            try (0..<3).map { _ in try clock.measure { _ = try parse(text) } }.min()!
        }
        let doc = try parse(large)
        let items = try #require(doc["item"]?.array)
        #expect(items.count == 20_000)
        #expect(items[19_999].table?["size"]?.integer == 19_999)
        #expect(items[19_999].position == at(79_997, 1))
        let ratio = try best(large) / best(small)
        #expect(ratio < 3.2, "doubling the document multiplied the parse time by \(ratio)")
    }
}

/// Mutated documents must give a value or a `TOMLError`, never a crash (a trap ends the run).
@Suite struct RobustnessTests {
    static let seedDocument = #"""
        name = "x" # c
        "q k".'l' = 'lit'
        n = [1, -2_0, 0x1F, 0o7, 0b1, 1.5e-3, inf, -nan, true, 1979-05-27T07:32:00.5+01:00, 07:32:00, 2024-02-29]
        s = """a\tb \u00E9 \
            c"""
        t = '''x
        y'''
        i = { a.b = 1, c = [ { d = "e" } ] }
        [a.b]
        k = "v"
        [[arr]]
        x = 1
        [[arr.sub]]
        y = 2
        """#

    @Test func mutatedDocumentsNeverCrash() {
        var random = SplitMix64(state: 42)  // deterministic, so a failure can be reproduced
        let original = Array(RobustnessTests.seedDocument.utf8)
        let alphabet = Array("[]{}=.,\"'\\#\n\r\t 0xe_+-:TZuU".utf8)
        var parsed = 0
        var rejected = 0
        for _ in 0..<4000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[position] = alphabet.randomElement(using: &random) ?? 0
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet.randomElement(using: &random) ?? 0, at: position)
                }
                if bytes.isEmpty { bytes = [0x61] }
            }
            do {
                _ = try TOMLDocument.parse(bytes: bytes, file: "t.toml")
                parsed += 1
            } catch {
                #expect(error.position.line >= 1 && error.position.column >= 1)
                rejected += 1
            }
        }
        // Both outcomes occur, so the mutations exercise the error paths and the happy path.
        #expect(parsed > 0)
        #expect(rejected > 0)
    }
}

/// The suggestions of the unknown-key messages that recipes and service definitions share.
@Suite struct KeySuggestionTests {
    @Test func editDistances() {
        func distance(_ a: String, _ b: String) -> Int { editDistance(Array(a), Array(b)) }
        #expect(distance("hostname", "hostname") == 0)
        #expect(distance("hostnme", "hostname") == 1)
        #expect(distance("hsotname", "hostname") == 1)
        #expect(distance("", "abc") == 3)
        #expect(distance("kitten", "sitting") == 3)
        #expect(closestMatch(to: "Hostname", among: ["hostname", "timezone"]) == "hostname")
        #expect(closestMatch(to: "xyz", among: ["hostname", "timezone"]) == nil)
    }

    @Test func unknownKeyMessages() {
        #expect(unknownKeyMessage("hostnme", known: ["hostname", "timezone"]) == "unknown key 'hostnme'; did you mean 'hostname'?")
        #expect(unknownKeyMessage("xyz", known: ["hostname", "timezone"]) == "unknown key 'xyz'; the keys here are 'hostname', 'timezone'")
    }
}

/// Writing TOML: a basic string reads back as the text it was made from.
@Suite struct BasicStringTests {
    @Test(arguments: ["plain", "", "quote \" and backslash \\", "lines\nand\ttabs\r", "bell \u{07}, delete \u{7F}", "é ∑ 🎉"])
    func readsBackAsWritten(_ text: String) throws {
        let written = TOMLDocument.basicString(text)
        #expect(try parse("k = \(written)")["k"]?.string == text)
        #expect(!written.contains("\n") && !written.contains("\r"), "one line: \(written)")
    }

    @Test func controlCharactersAreEscaped() {
        #expect(TOMLDocument.basicString("a\"b\\c\nd\te\u{1B}f\u{7F}") == #""a\"b\\c\nd\te\u001Bf\u007F""#)
    }
}
