import TOML

/// One problem in a recipe: where (file, line, column), which key, and what is wrong.
public typealias RecipeError = TOMLProblem

/// Every problem found in a recipe, sorted by position.
public typealias RecipeErrors = TOMLProblems
