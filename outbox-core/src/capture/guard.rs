//! PostgreSQL's guard against DDL that bypasses `capture migrate`: an event trigger.

use super::trigger::qualified;
use crate::Result;
use crate::table::{Dialect, Identifier, Table, TableNames};

/// The setting `capture migrate` turns on (for its transaction) so the DDL guard lets its
/// own DDL through.
pub const MIGRATE_SETTING: &str = "outbox.capture_migrate";

/// PostgreSQL: an event trigger that refuses `ALTER TABLE` of a captured table unless it
/// comes through `capture migrate`, so DDL cannot bypass the compatibility check. Event
/// triggers are database-wide and need a superuser; the function does nothing once the
/// captures table is gone. It runs as its owner (`SECURITY DEFINER`, with the installer's
/// `search_path`, which resolved the captured tables' names): every role's `ALTER TABLE`
/// fires it, and a role without rights on the captures table must not have its own DDL
/// refused for that.
pub fn guard_statements(names: &TableNames) -> Result<Vec<String>> {
    let dialect = Dialect::Postgres;
    let prefix = names.name(Table::Events);
    let prefix = prefix.as_str().trim_end_matches("_events");
    let name = Identifier::new(&format!("{prefix}_capture_guard"))?;
    let function = qualified(dialect, names, &name);
    let captures = names.qualified(dialect, Table::Captures);
    let captures_literal = captures.replace('\'', "''");
    let regclass = match names.schema() {
        Some(schema) => format!("to_regclass(format('%I.%I', '{schema}', k.table_name))"),
        None => "to_regclass(quote_ident(k.table_name))".to_owned(),
    };
    Ok(vec![
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $outbox$\n\
             DECLARE c record; hit text;\n\
             BEGIN\n\
             IF current_setting('{MIGRATE_SETTING}', true) = 'on' OR to_regclass('{captures_literal}') IS NULL THEN RETURN; END IF;\n\
             FOR c IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP\n\
             BEGIN\n\
             EXECUTE 'SELECT k.table_name FROM {captures_literal} k WHERE {regclass_sql} = $1' INTO hit USING c.objid;\n\
             EXCEPTION WHEN undefined_table THEN RETURN; -- dropped meanwhile: nothing is captured\n\
             END;\n\
             IF hit IS NOT NULL THEN\n\
             RAISE EXCEPTION 'table % is captured by the outbox: change it with outbox-relay capture migrate', hit;\n\
             END IF;\n\
             END LOOP;\n\
             END $outbox$",
            regclass_sql = regclass.replace('\'', "''"),
        ),
        format!("DROP EVENT TRIGGER IF EXISTS {}", dialect.quote(&name)),
        format!(
            "CREATE EVENT TRIGGER {} ON ddl_command_end WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION {function}()",
            dialect.quote(&name)
        ),
    ])
}

/// PostgreSQL: removes the DDL guard (once no table is captured).
pub fn unguard_statements(names: &TableNames) -> Result<Vec<String>> {
    let dialect = Dialect::Postgres;
    let prefix = names.name(Table::Events);
    let prefix = prefix.as_str().trim_end_matches("_events");
    let name = Identifier::new(&format!("{prefix}_capture_guard"))?;
    Ok(vec![
        format!("DROP EVENT TRIGGER IF EXISTS {}", dialect.quote(&name)),
        format!(
            "DROP FUNCTION IF EXISTS {}()",
            qualified(dialect, names, &name)
        ),
    ])
}
