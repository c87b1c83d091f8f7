"""Catalog SQL from psql and drivers (PostgreSQL syntax) → SQL DataFusion 55 plans, same answers.

psql's backslash commands and drivers' type introspection use PostgreSQL-only syntax and forms that
DataFusion cannot plan. One parse with sqlglot (PostgreSQL dialect), then tree rewrites, in order:

1. syntax: `OPERATOR(pg_catalog.~)` → `~`, `COLLATE …` dropped, `E'…'` → plain string, `pg_catalog.`
   function prefixes dropped, `'{a,b}'` array literals → `ARRAY[…]`, `current_user` & co → UDF calls.
2. casts: `::regclass`, `::regtype`, `::regnamespace`, `::regproc`, `::oid`, `::name`, `::"char"` …
   become lookups (`to_regclass('t')`, `__tf_regclass_out(oid)`, `format_type(oid, NULL)`) or plain
   SQL types. A literal cast to a reg type is an OID (it is compared with OID columns); an expression
   cast to one is its printed name (psql displays it), unless compared or cast on to an integer.
3. functions: catalog UDF calls get their arguments cast to the UDF's exact signature (and omitted
   optional arguments filled in); constant ones (`has_table_privilege` …) become their constant.
4. relations: `information_schema.X` → `__tf_information_schema.X` (so DataFusion's own
   information_schema can stay enabled), unqualified `pg_class` & co → `pg_catalog.pg_class`, and a
   relation PostgreSQL does not have either (from a newer release, say) → an empty derived table with
   the columns the query uses.
5. emptiness: most catalog relations are always empty here (`relations.MODELLED`). A SELECT that
   inner-joins one is empty, so a subquery over it folds to its value on no rows (NULL, `{}`, false),
   and an empty top-level SELECT keeps its output names and answers no rows. This removes nearly all
   of psql's correlated subqueries before DataFusion sees them.
6. decorrelation: a remaining correlated scalar subquery gets its single value aggregated
   (`first_value`, which DataFusion requires) and its conditions on outer columns only lifted into
   `CASE WHEN … THEN (subquery) END`; `ARRAY(SELECT x …)` becomes `(SELECT array_agg(x) …)`.

asyncpg's type-introspection query (recursive CTE with correlated recursive subqueries) is replaced
by an equivalent simpler query over our types (no domains, composites or ranges exist here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from timefusion.query.catalog.functions import CONSTANT_FUNCTIONS, SPECS
from timefusion.query.catalog.pgtypes import TYPES, regtype_oid
from timefusion.query.catalog.relations import (
    ALWAYS_NULL,
    CATALOG_NAMES,
    INFO_NAMES,
    MODELLED,
    RELATIONS,
)
from timefusion.query.rewrite.placeholders import placeholder_spans, spaced

DIALECT = "postgres"
INFO_ALIAS = "__tf_information_schema"  # where our information_schema is registered, besides its name

_NEEDS = re.compile(
    r"\b(pg_catalog|information_schema|pg_[a-z0-9_]+|reg(class|type|proc|procedure|namespace|role)"
    r"|current_(schemas?|database|setting|user|catalog)|session_user|set_config|format_type"
    r"|(obj|col|shobj)_description|has_[a-z_]+_privilege|to_reg[a-z]+|quote_ident|array_upper)\b"
    r"|::\s*oid\b|OPERATOR\s*\(",
    re.IGNORECASE,
)


def needs_catalog(sql: str) -> bool:
    """Whether `sql` reads the catalog or calls catalog functions (then rewrite it and register us)."""
    return _NEEDS.search(sql) is not None


# ---------------------------------------------------------------------------------------------------
# 0. token-level fixes for what sqlglot cannot parse


_PG_ONLY_ARRAY_TYPES = {"oid": "bigint", "regtype": "bigint", "regclass": "bigint", "name": "text"}


def _pretokenize(sql: str) -> str:
    """`::pg_catalog.T` → `::T`; `::oid[]` (sqlglot reads `oid[]` as a subscript) → `::bigint[]`;
    a space after each `$n` (sqlglot reads `$1,$2` as a dollar quote)."""
    spans = placeholder_spans(sql)
    if spans:
        sql = spaced(sql, spans)
    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    except SqlglotError:
        return sql
    edits: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.token_type != TokenType.DCOLON:
            continue
        j = i + 1
        if (
            j + 1 < len(tokens)
            and tokens[j].text.lower() == "pg_catalog"
            and tokens[j + 1].token_type == TokenType.DOT
        ):
            edits.append((tokens[j].start, tokens[j + 1].end + 1, ""))
            j += 2
        if (
            j + 2 < len(tokens)
            and tokens[j].text.lower() in _PG_ONLY_ARRAY_TYPES
            and tokens[j + 1].token_type == TokenType.L_BRACKET
            and tokens[j + 2].token_type == TokenType.R_BRACKET
        ):
            edits.append((tokens[j].start, tokens[j].end + 1, _PG_ONLY_ARRAY_TYPES[tokens[j].text.lower()]))
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


# ---------------------------------------------------------------------------------------------------
# entry point


def rewrite_catalog_sql(sql: str) -> str:
    """Rewrite one catalog statement for DataFusion (see the module docstring); `$n` stay in place.

    A statement sqlglot cannot parse, or that is not a query, is returned with only the token fixes
    applied: DataFusion then reports its own error.
    """
    text = _pretokenize(sql)
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except SqlglotError:
        return text
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return text
    tree = statements[0]
    shim = _asyncpg_typeinfo(tree)
    if shim is not None:
        tree = shim
    names = [_pg_name(p) for p in tree.selects] if isinstance(tree, exp.Query) else None
    tree = _syntax(tree)
    tree = _casts(tree)
    tree = _functions(tree)
    tree = _relations(tree)
    tree = _fold_empty(tree)
    tree = _decorrelate(tree)
    for select in tree.find_all(exp.Select):
        _unique_star_columns(select)
    first = tree
    while isinstance(first, exp.SetOperation):
        first = first.this
    if names is not None and isinstance(first, exp.Select):
        _keep_names(first, names)
    return tree.sql(dialect=DIALECT, normalize_functions="lower")


# ---------------------------------------------------------------------------------------------------
# 1. syntax


def _bottom_up(tree: exp.Expression, fix: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    """Apply `fix` to every node, children before parents (sqlglot's transform skips the children of
    a node it has replaced, and several rewrites here nest)."""
    for node in reversed(list(tree.walk(bfs=False))):
        new = fix(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


_OPERATORS: dict[str, type[exp.Expression]] = {
    "~": exp.RegexpLike,
    "~*": exp.RegexpILike,
    "=": exp.EQ,
    "<>": exp.NEQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    ">": exp.GT,
    "<=": exp.LTE,
    ">=": exp.GTE,
    "||": exp.DPipe,
    "~~": exp.Like,
    "~~*": exp.ILike,
    "+": exp.Add,
    "-": exp.Sub,
}
_NEGATED = {"!~": "~", "!~*": "~*", "!~~": "~~", "!~~*": "~~*"}


def _syntax(tree: exp.Expression) -> exp.Expression:
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Operator):
            op = str(node.args.get("operator", "")).strip()
            op = op.rsplit(".", 1)[-1] if op.lower().startswith("pg_catalog.") else op
            negate = op in _NEGATED
            cls = _OPERATORS.get(_NEGATED.get(op, op))
            if cls is None:
                return node
            made = cls(this=node.this, expression=node.expression)
            return exp.Not(this=made) if negate else made
        if isinstance(node, exp.Collate):
            return node.this
        if isinstance(node, exp.ByteString):  # E'…' (escapes already applied by the parser)
            return exp.Literal.string(node.this)
        if isinstance(node, exp.Any) and _is_array_text(node.this):
            return exp.Any(this=_array_literal(_literal_text(node.this)))
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            node.set("db", None)  # pg_catalog.generate_series(...) / pg_catalog.unnest(...)
            alias = node.args.get("alias")
            if isinstance(node.this, exp.Explode | exp.Unnest) and alias is not None and not alias.columns:
                alias.set("columns", [alias.this.copy()])
        if (
            isinstance(node, exp.Dot)
            and isinstance(node.this, exp.Identifier)
            and node.this.name.lower() == "pg_catalog"
            and isinstance(node.expression, exp.Func)
        ):
            return node.expression
        if isinstance(node, exp.Column) and node.args.get("db") is not None:
            node.set("db", None)  # pg_catalog.pg_class.relname → pg_class.relname
            node.set("catalog", None)
        return node

    return _bottom_up(tree, fix)


def _literal_text(node: exp.Expression) -> str:
    while isinstance(node, exp.Paren):
        node = node.this
    return node.this if isinstance(node, exp.Literal) else ""


def _is_array_text(node: exp.Expression) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Literal) and node.is_string and node.this.strip().startswith("{")


def _split_array_text(text: str) -> list[str | None]:
    """PostgreSQL's one-dimensional array text `{a,"b c",NULL}` → elements (None for NULL)."""
    body = text.strip()[1:-1]
    items: list[str | None] = []
    if not body.strip():
        return items
    current, quoted, was_quoted, i = [], False, False, 0
    while i < len(body):
        ch = body[i]
        if quoted:
            if ch == "\\" and i + 1 < len(body):
                current.append(body[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
            else:
                current.append(ch)
        elif ch == '"':
            quoted = was_quoted = True
        elif ch == ",":
            word = "".join(current).strip() if not was_quoted else "".join(current)
            items.append(None if not was_quoted and word.upper() == "NULL" else word)
            current, was_quoted = [], False
        else:
            current.append(ch)
        i += 1
    word = "".join(current).strip() if not was_quoted else "".join(current)
    items.append(None if not was_quoted and word.upper() == "NULL" else word)
    return items


def _array_literal(text: str, numeric: bool | None = None) -> exp.Expression:
    items = _split_array_text(text)
    if numeric is None:
        numeric = bool(items) and all(i is not None and re.fullmatch(r"-?\d+(\.\d+)?", i) for i in items)
    values: list[exp.Expression] = []
    for item in items:
        if item is None:
            values.append(exp.Null())
        elif numeric:
            values.append(exp.Literal.number(item))
        else:
            values.append(exp.Literal.string(item))
    return exp.Array(expressions=values)


# ---------------------------------------------------------------------------------------------------
# 2. casts

_TEXT_TYPES = {"text", "name", "char", '"char"', "bpchar", "varchar", "pg_node_tree", "aclitem", "cstring"}
_TEXT_TYPES |= {"regproc", "regprocedure", "regoper", "regoperator", "unknown", "citext"}
_INT_TYPES = {"oid", "xid", "cid", "xid8", "regconfig", "regdictionary", "regcollation"}
_REG_TYPES = {"regclass", "regtype", "regnamespace", "regrole"}
_NUMERIC_TARGETS = {"oid", "int", "int4", "int8", "bigint", "integer", "smallint", "int2", "xid"}


def _type_name(to: exp.Expression) -> str | None:
    """Lower-case PostgreSQL name of a cast target, or None for types sqlglot knows natively."""
    if isinstance(to, exp.ObjectIdentifier):
        return to.name.lower()
    if isinstance(to, exp.DataType):
        if to.this == exp.DataType.Type.USERDEFINED:
            kind = to.args.get("kind")
            if isinstance(kind, exp.Dot):
                kind = kind.expression
            if isinstance(kind, exp.Identifier):
                return f'"{kind.name}"' if kind.quoted and kind.name == "char" else kind.name.lower()
            return str(kind).lower() if kind is not None else None
        if to.this in (exp.DataType.Type.NAME,):
            return "name"
        if to.this == exp.DataType.Type.CHAR and not to.expressions:
            return "char"
        if to.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.NCHAR, exp.DataType.Type.NVARCHAR):
            return "varchar"
    return None


def _text_type() -> exp.DataType:
    return exp.DataType.build("TEXT")


def _bigint() -> exp.DataType:
    return exp.DataType.build("BIGINT")


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _is_string_literal(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _reg_numeric(kind: str, value: exp.Expression) -> exp.Expression:
    """A reg-type value as its OID: a literal name is looked up, an expression already is an OID."""
    if _is_string_literal(value):
        text = value.this.strip()
        if text.isdigit():
            return exp.Literal.number(text)
        return _call(f"to_{kind}", exp.Literal.string(text))
    return exp.Cast(this=value, to=_bigint())


def _reg_display(kind: str, value: exp.Expression) -> exp.Expression:
    """A reg-type value as PostgreSQL prints it (relation / type / schema / role name)."""
    oid = _reg_numeric(kind, value)
    if kind == "regclass":
        return _call("__tf_regclass_out", oid)
    if kind == "regtype":
        return _call("format_type", oid, exp.Null())
    if kind == "regnamespace":
        return _call("__tf_regnamespace_out", oid)
    return _call("pg_get_userbyid", oid)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.NullSafeEQ, exp.NullSafeNEQ)


def _casts(tree: exp.Expression) -> exp.Expression:
    def fix(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Cast | exp.TryCast):
            return node
        to = node.args.get("to")
        name = _type_name(to) if to is not None else None
        value = node.this
        if isinstance(to, exp.DataType) and to.this == exp.DataType.Type.ARRAY and _is_array_text(value):
            element = to.expressions[0] if to.expressions else None
            element_name = _type_name(element) if element is not None else None
            numeric = element is not None and (
                element.is_type(*exp.DataType.NUMERIC_TYPES) or element_name in _INT_TYPES
            )
            return _array_literal(_literal_text(value), numeric)
        if name is None:
            return node
        if name in _REG_TYPES:
            parent = node.parent
            numeric = isinstance(parent, _COMPARISONS) or (
                isinstance(parent, exp.Cast | exp.TryCast)
                and (
                    _type_name(parent.args["to"]) in _NUMERIC_TARGETS
                    or parent.args["to"].is_type(*exp.DataType.INTEGER_TYPES)
                )
            )
            if _is_string_literal(value) and not (
                isinstance(parent, exp.Cast) and parent.args["to"].is_type(*exp.DataType.TEXT_TYPES)
            ):
                numeric = True
            return _reg_numeric(name, value) if numeric else _reg_display(name, value)
        if name in ("regproc", "regprocedure") and _is_string_literal(value):
            text = value.this.split("(")[0].strip()
            return exp.Literal.string(text[len("pg_catalog.") :] if text.startswith("pg_catalog.") else text)
        if name in _TEXT_TYPES:
            return exp.Cast(this=value, to=_text_type())
        if name in _INT_TYPES:
            return exp.Cast(this=value, to=_bigint())
        if name in ("int2vector", "oidvector"):
            if _is_string_literal(value):
                return _array_literal("{" + ",".join(value.this.split()) + "}", True)
            return exp.Cast(this=value, to=exp.DataType.build("BIGINT[]"))
        return node

    return _bottom_up(tree, fix)


# ---------------------------------------------------------------------------------------------------
# 3. functions

_RENAMED_FUNCS = {
    "current_user": "__tf_current_user",
    "session_user": "__tf_current_user",
    "user": "__tf_current_user",
}


def _function_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.CurrentUser | exp.SessionUser):
        return "current_user"
    if isinstance(node, exp.CurrentSchema):
        return "current_schema"
    if isinstance(node, exp.CurrentDatabase | exp.CurrentCatalog):
        return "current_database"
    if isinstance(node, exp.CurrentSchemas):
        return "current_schemas"
    return None


def _function_args(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    if isinstance(node, exp.CurrentSchemas):
        return [node.this] if node.this is not None else []
    return []


def _functions(tree: exp.Expression) -> exp.Expression:
    def fix(node: exp.Expression) -> exp.Expression:
        name = _function_name(node)
        if name is None:
            return node
        name = _RENAMED_FUNCS.get(name, name)
        args = _function_args(node)
        if name in CONSTANT_FUNCTIONS:
            return sqlglot.parse_one(CONSTANT_FUNCTIONS[name], read=DIALECT)
        if name == "array_upper" and len(args) == 2:  # array_length is unsigned: cast for generate_series
            return exp.Cast(this=_call("array_length", *args), to=_bigint())
        if name == "array_lower" and len(args) == 2:
            return exp.Case(
                ifs=[
                    exp.If(
                        this=exp.GT(this=_call("array_length", *args), expression=exp.Literal.number(0)),
                        true=exp.Literal.number(1),
                    )
                ]
            )
        spec = SPECS.get(name)
        if spec is None:
            return node
        wanted = len(spec.args)
        missing = wanted - len(args)
        if missing > 0:
            fill = spec.optional[len(spec.optional) - missing :] if missing <= len(spec.optional) else None
            if fill is None:
                return node  # wrong arity: leave it to DataFusion's error
            args += [sqlglot.parse_one(f, read=DIALECT) for f in fill]
        args = [_coerce(a, t) for a, t in zip(args[:wanted], spec.args)]
        return _call(name, *args)

    return _bottom_up(tree, fix)


def _coerce(arg: exp.Expression, sql_type: str) -> exp.Expression:
    if sql_type == "TEXT":
        if _is_string_literal(arg):
            return arg
        return _call("arrow_cast", arg, exp.Literal.string("Utf8"))
    if sql_type == "BIGINT" and isinstance(arg, exp.Literal) and not arg.is_string:
        return arg
    if isinstance(arg, exp.Cast) and arg.args["to"].is_type(sql_type):
        return arg
    if sql_type == "BOOLEAN" and isinstance(arg, exp.Boolean):
        return arg
    return exp.Cast(this=arg, to=exp.DataType.build(sql_type))


# ---------------------------------------------------------------------------------------------------
# 4. relations


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _relations(tree: exp.Expression) -> exp.Expression:
    ctes = _cte_names(tree)
    unknown: list[exp.Table] = []
    for node in list(tree.find_all(exp.Table)):
        if not isinstance(node.this, exp.Identifier):
            continue
        name = node.name.lower()
        db = node.args.get("db")
        schema = db.name.lower() if isinstance(db, exp.Identifier) else None
        if schema is None:
            if name in ctes or name not in CATALOG_NAMES:
                continue
            schema = "pg_catalog"
        if schema not in ("pg_catalog", "information_schema"):
            continue
        node.set("catalog", None)
        if name not in (CATALOG_NAMES if schema == "pg_catalog" else INFO_NAMES):
            unknown.append(node)
            continue
        node.set("db", exp.to_identifier("pg_catalog" if schema == "pg_catalog" else INFO_ALIAS))
        node.set("this", exp.to_identifier(name))
        node.meta["tf_relation"] = (schema, name)
    for node in unknown:
        replacement = _empty_relation(node, tree)
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _empty_relation(table: exp.Table, tree: exp.Expression) -> exp.Expression:
    """A zero-row derived table standing in for a catalog relation PostgreSQL 15 does not have.

    Its columns are the ones the query names with the relation's alias (or, unqualified, ones no
    known relation of the query has); their types are unknown, so they are NULL text.
    """
    alias = table.alias_or_name
    columns: list[str] = []
    known: set[str] = set()
    for other in tree.find_all(exp.Table):
        rel = other.meta.get("tf_relation")
        if rel is not None:
            known |= RELATIONS[rel].column_names
    for column in tree.find_all(exp.Column):
        qualifier = column.table
        ours = (qualifier and qualifier.lower() == alias.lower()) or (
            not qualifier and column.name not in known
        )
        if ours and column.name and column.name not in columns:
            columns.append(column.name)
    select = exp.Select(
        expressions=[
            exp.alias_(exp.Cast(this=exp.Null(), to=_text_type()), c, quoted=True)
            for c in columns or ["?column?"]
        ]
    ).where(exp.false())
    derived = exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    derived.meta["tf_empty"] = True
    return derived


# ---------------------------------------------------------------------------------------------------
# 5. emptiness


def _aliases(select: exp.Select) -> dict[str, exp.Expression]:
    """alias (lower case) → source, for the FROM and JOIN sources of one SELECT."""
    found: dict[str, exp.Expression] = {}
    sources = []
    if select.args.get("from_") is not None:
        sources.append(select.args["from_"].this)
    sources += [j.this for j in select.args.get("joins") or []]
    for source in sources:
        found[source.alias_or_name.lower()] = source
    return found


def _inner_sources(select: exp.Select) -> Iterable[exp.Expression]:
    """Sources whose emptiness empties the SELECT: FROM, and inner / cross / comma joins."""
    if select.args.get("from_") is not None:
        yield select.args["from_"].this
    for join in select.args.get("joins") or []:
        side = (join.side or "").upper()
        if side in ("LEFT", "FULL") or (join.kind or "").upper() in ("OUTER",):
            continue
        yield join.this


def _resolve(column: exp.Column) -> exp.Expression | None:
    """The source a column refers to, searching enclosing SELECTs outwards (an unqualified column:
    the catalog relation of the nearest SELECT that has a column of that name)."""
    qualifier = column.table.lower()
    scope = column.find_ancestor(exp.Select)
    while scope is not None:
        sources = _aliases(scope)
        if qualifier and qualifier in sources:
            return sources[qualifier]
        if not qualifier:
            for source in sources.values():
                rel = source.meta.get("tf_relation")
                if rel is not None and column.name.lower() in RELATIONS[rel].column_names:
                    return source
        scope = scope.find_ancestor(exp.Select)
    return None


def _always_null(node: exp.Expression) -> bool:
    """A column that is NULL in every row we emit (an ACL, an option list …)."""
    if not isinstance(node, exp.Column):
        return False
    source = _resolve(node)
    if not isinstance(source, exp.Table):
        return False
    rel = source.meta.get("tf_relation")
    return rel is not None and node.name.lower() in ALWAYS_NULL.get(rel[1], frozenset())


def _source_empty(source: exp.Expression) -> bool:
    if source.meta.get("tf_empty"):
        return True
    if isinstance(source, exp.Table):
        rel = source.meta.get("tf_relation")
        if rel is not None:
            return rel not in MODELLED
        if isinstance(source.this, exp.Explode | exp.Unnest):
            inner = source.this.this if isinstance(source.this, exp.Explode) else source.this.expressions[0]
            return isinstance(inner, exp.Null) or _always_null(inner)
        return False
    if isinstance(source, exp.Subquery):
        return bool(source.this.meta.get("tf_empty"))
    return False


def _conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    if condition is None:
        return []
    if isinstance(condition, exp.And):
        return _conjuncts(condition.this) + _conjuncts(condition.expression)
    if isinstance(condition, exp.Paren):
        return _conjuncts(condition.this) if isinstance(condition.this, exp.And) else [condition]
    return [condition]


_AGGREGATES = {"array_agg", "string_agg", "first_value", "count", "max", "min", "sum", "avg", "bool_and"}
_AGGREGATES |= {"bool_or", "every", "json_agg", "jsonb_agg"}


def _own_aggregate(select: exp.Select) -> bool:
    """Whether the select list of `select` itself (not a nested query) aggregates."""
    for projection in select.expressions:
        for node in projection.find_all(exp.AggFunc, exp.Anonymous):
            is_agg = isinstance(node, exp.AggFunc) or node.name.lower() in _AGGREGATES
            if is_agg and node.find_ancestor(exp.Select) is select:
                return True
    return False


def _select_empty(select: exp.Select) -> bool:
    if select.args.get("group") is None and _own_aggregate(select):
        return False  # an aggregate over no rows is still one row
    if any(_source_empty(s) for s in _inner_sources(select)):
        return True
    where = select.args.get("where")
    for conjunct in _conjuncts(where.this if where is not None else None):
        if isinstance(conjunct, exp.Boolean) and not conjunct.this:
            return True
        is_not_null = isinstance(conjunct, exp.Is) and conjunct.args.get("negate")
        if isinstance(conjunct, exp.Not) and isinstance(conjunct.this, exp.Is):
            conjunct, is_not_null = conjunct.this, True
        if is_not_null and isinstance(conjunct.expression, exp.Null) and _always_null(conjunct.this):
            return True
        if isinstance(conjunct, exp.EQ | exp.NEQ | exp.GT | exp.LT | exp.GTE | exp.LTE) and (
            _always_null(conjunct.this) or _always_null(conjunct.expression)
        ):
            return True
    return False


def _empty_array() -> exp.Expression:
    return exp.Cast(this=_call("make_array"), to=exp.DataType.build("TEXT[]"))


def _fold_empty(tree: exp.Expression) -> exp.Expression:
    queries = [n for n in tree.find_all(exp.Select, exp.SetOperation)]
    for query in reversed(queries):  # innermost first
        if isinstance(query, exp.SetOperation):
            empty = bool(query.this.meta.get("tf_empty")) and bool(query.expression.meta.get("tf_empty"))
            if isinstance(query, exp.Intersect | exp.Except) and query.this.meta.get("tf_empty"):
                empty = True
        else:
            empty = _select_empty(query)
        if not empty:
            continue
        query.meta["tf_empty"] = True
        holder = query.parent
        if isinstance(holder, exp.Subquery) and not isinstance(holder.parent, exp.From | exp.Join):
            if isinstance(holder.parent, exp.In):
                holder.parent.replace(exp.false())
            elif not isinstance(holder.parent, exp.SetOperation | exp.CTE):
                holder.replace(exp.Null())
            continue
        if isinstance(holder, exp.Exists):
            holder.replace(exp.false())
            continue
        if isinstance(holder, exp.Array):
            holder.replace(_empty_array())
            continue
        if isinstance(query, exp.Select):
            _hollow(query)
    return tree


def _hollow(select: exp.Select) -> None:
    """Make an empty SELECT trivially plannable: NULL columns with its output names, no rows."""
    names = _unique([_pg_name(p) for p in select.expressions])
    if any(
        isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        for p in select.expressions
    ):
        select.set("where", exp.Where(this=exp.false()))
        return
    select.set("expressions", [exp.alias_(exp.Null(), n, quoted=True) for n in names])
    for key in ("from_", "joins", "group", "having", "order", "limit", "offset", "distinct", "windows"):
        select.set(key, None)
    select.set("where", exp.Where(this=exp.false()))


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count + 1}")
    return out


# ---------------------------------------------------------------------------------------------------
# 6. decorrelation


def _defined_aliases(select: exp.Select) -> set[str]:
    names = set()
    for node in select.find_all(exp.Table, exp.Subquery):
        if node is not select and (node.args.get("alias") is not None or isinstance(node, exp.Table)):
            names.add(node.alias_or_name.lower())
    for cte in select.find_all(exp.CTE):
        names.add(cte.alias_or_name.lower())
    return names


def _outer_qualifiers(node: exp.Expression, inner: set[str]) -> set[str]:
    return {c.table.lower() for c in node.find_all(exp.Column) if c.table and c.table.lower() not in inner}


def _decorrelate(tree: exp.Expression) -> exp.Expression:
    for array in list(tree.find_all(exp.Array)):
        if len(array.expressions) == 1 and isinstance(array.expressions[0], exp.Select):
            array.replace(exp.Subquery(this=_array_agg(array.expressions[0])))
    for sub in reversed(list(tree.find_all(exp.Subquery))):
        if isinstance(sub.parent, exp.From | exp.Join | exp.SetOperation | exp.CTE | exp.In):
            continue
        select = sub.this
        if not isinstance(select, exp.Select) or len(select.expressions) != 1:
            continue
        inner = _defined_aliases(select)
        if not _outer_qualifiers(select, inner):
            continue
        where = select.args.get("where")
        lifted, kept = [], []
        for conjunct in _conjuncts(where.this if where is not None else None):
            columns = list(conjunct.find_all(exp.Column))
            outer_only = columns and all(c.table and c.table.lower() not in inner for c in columns)
            (lifted if outer_only and not conjunct.find(exp.Subquery, exp.Select) else kept).append(conjunct)
        if lifted:
            select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        if select.args.get("group") is None and not _own_aggregate(select):
            projection = select.expressions[0]
            alias = projection.alias if isinstance(projection, exp.Alias) else None
            value = projection.this if isinstance(projection, exp.Alias) else projection
            aggregated = _ordered_agg("first_value", value.copy(), select.args.get("order"))
            select.set("expressions", [exp.alias_(aggregated, alias) if alias else aggregated])
            select.set("order", None)
            select.set("limit", None)
        if lifted:
            case = exp.Case(ifs=[exp.If(this=exp.and_(*lifted), true=sub.copy())])
            sub.replace(case)
    return tree


def _ordered_agg(name: str, value: exp.Expression, order: exp.Order | None) -> exp.Expression:
    """`name(value ORDER BY …)` (sqlglot spells an ordered aggregate argument as an Order node)."""
    cls = exp.ArrayAgg if name == "array_agg" else exp.FirstValue
    if order is None:
        return cls(this=value)
    return cls(this=exp.Order(this=value, expressions=order.expressions))


def _array_agg(select: exp.Select) -> exp.Select:
    """`ARRAY(SELECT x … ORDER BY y)` → `SELECT array_agg(x ORDER BY y) …` (NULL, not {}, on no rows)."""
    projection = select.expressions[0]
    value = projection.this if isinstance(projection, exp.Alias) else projection
    order = select.args.get("order")
    select.set("expressions", [_ordered_agg("array_agg", value.copy(), order)])
    select.set("order", None)
    return select


# ---------------------------------------------------------------------------------------------------
# output names


def _pg_name(projection: exp.Expression) -> str:
    """The column name PostgreSQL gives a select-list item (FigureColname)."""
    if isinstance(projection, exp.Alias):
        return projection.alias
    node = projection
    while isinstance(node, exp.Cast | exp.TryCast | exp.Paren):
        inner = node.this
        if isinstance(node, exp.Cast | exp.TryCast) and not isinstance(
            inner, exp.Column | exp.Func | exp.Cast
        ):
            return _cast_name(node.args.get("to"))
        node = inner
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select) and node.this.expressions:
        return _pg_name(node.this.expressions[0])
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        node = node.expression
    special = {
        exp.CurrentUser: "current_user",
        exp.SessionUser: "session_user",
        exp.CurrentSchema: "current_schema",
        exp.CurrentCatalog: "current_catalog",
        exp.Case: "case",
        exp.Array: "array",
        exp.Exists: "exists",
    }
    for cls, name in special.items():
        if isinstance(node, cls):
            return name
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func) and not isinstance(node, exp.Binary | exp.Unary | exp.Predicate):
        return node.sql_name().lower()
    return "?column?"


def _cast_name(to: exp.Expression | None) -> str:
    """A cast's column name: the target type's typname (`'a'::text` → text, `1::int` → int4)."""
    if to is None:
        return "?column?"
    name = _type_name(to) or to.sql(dialect=DIALECT).lower()
    oid = regtype_oid(name.strip('"') if name != '"char"' else name)
    row = TYPES.get(oid) if oid is not None else None
    return row.typname if row is not None else name.strip('"')


def _unique_star_columns(select: exp.Select) -> None:
    """`SELECT n.oid, n.*` (DBeaver): PostgreSQL returns `oid` twice, DataFusion refuses duplicate
    names, so the star leaves out the columns already selected by name (the first `oid` is kept)."""
    for projection in select.expressions:
        if not (isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)):
            continue
        qualifier = projection.table.lower()
        named = [
            p.name
            for p in select.expressions
            if isinstance(p, exp.Column) and not isinstance(p.this, exp.Star) and p.table.lower() == qualifier
        ]
        if named:
            star = projection.this
            existing = [c.name for c in star.args.get("except_") or []]
            star.set("except_", [exp.column(n) for n in dict.fromkeys(existing + named)])


def _keep_names(select: exp.Select, names: list[str]) -> None:
    """Alias rewritten select-list items with their PostgreSQL names (unique, as DataFusion needs)."""
    if len(names) != len(select.expressions) or any(isinstance(p, exp.Star) for p in select.expressions):
        return
    out = []
    for name, projection in zip(_unique(names), select.expressions):
        if isinstance(projection, exp.Alias) or (
            isinstance(projection, exp.Column) and projection.name == name
        ):
            out.append(projection)
        else:
            out.append(exp.alias_(projection, name, quoted=True))
    select.set("expressions", out)


# ---------------------------------------------------------------------------------------------------
# asyncpg's type introspection

_ASYNCPG_TYPEINFO = """
WITH RECURSIVE typeinfo_tree(
    oid, ns, name, kind, basetype, elemtype, elemdelim,
    range_subtype, attrtypoids, attrnames, depth)
AS (
    SELECT t.oid, ns.nspname, t.typname, t.typtype, CAST(NULL AS BIGINT) AS basetype, t.typelem,
           elem_t.typdelim,
           CAST(NULL AS BIGINT) AS range_subtype, CAST(NULL AS BIGINT[]) AS attrtypoids,
           CAST(NULL AS TEXT[]) AS attrnames, 0
    FROM pg_catalog.pg_type AS t
    JOIN pg_catalog.pg_namespace AS ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_type AS elem_t
        ON t.typlen = -1 AND t.typelem <> 0 AND t.typelem = elem_t.oid
    WHERE t.oid = ANY(__ARG__)
    UNION ALL
    SELECT t.oid, ns.nspname, t.typname, t.typtype, CAST(NULL AS BIGINT) AS basetype, t.typelem,
           elem_t.typdelim,
           CAST(NULL AS BIGINT) AS range_subtype, CAST(NULL AS BIGINT[]) AS attrtypoids,
           CAST(NULL AS TEXT[]) AS attrnames, tt.depth + 1
    FROM pg_catalog.pg_type AS t
    JOIN pg_catalog.pg_namespace AS ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_type AS elem_t
        ON t.typlen = -1 AND t.typelem <> 0 AND t.typelem = elem_t.oid
    JOIN typeinfo_tree AS tt ON t.oid = tt.elemtype
)
SELECT DISTINCT *,
    format_type(basetype, NULL) AS basetype_name,
    format_type(elemtype, NULL) AS elemtype_name,
    format_type(range_subtype, NULL) AS range_subtype_name
FROM typeinfo_tree
ORDER BY depth DESC
"""


def _asyncpg_typeinfo(tree: exp.Expression) -> exp.Expression | None:
    """asyncpg's INTRO_LOOKUP_TYPES → the same rows from a query DataFusion can plan, or None."""
    with_ = tree.args.get("with_") or tree.args.get("with")
    if with_ is None or not any(cte.alias_or_name.lower() == "typeinfo_tree" for cte in with_.expressions):
        return None
    argument = None
    for any_node in tree.find_all(exp.Any):
        eq = any_node.parent
        # `ti.oid = any($1::oid[])`, not `ti.oid = any(tt.attrtypoids)`
        if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column) and eq.this.name == "oid":
            if any_node.find(exp.Column):
                continue
            argument = any_node.this
            break
    if argument is None:
        return None
    while isinstance(argument, exp.Paren):
        argument = argument.this
    replacement = sqlglot.parse_one(_ASYNCPG_TYPEINFO, read=DIALECT)
    for node in replacement.find_all(exp.Column):
        if node.name == "__ARG__":
            node.replace(argument.copy())
            break
    return replacement
