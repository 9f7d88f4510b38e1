import TOML

/// One problem in a service definition: where (file, line, column), which key ("command",
/// "ready.tcp", "depends[1]"; prefixed with "services[N]." in a recipe), what is wrong.
package typealias ServiceError = TOMLProblem

/// Every problem found in the service definitions, sorted by file and position.
package typealias ServiceErrors = TOMLProblems
