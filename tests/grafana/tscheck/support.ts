// Types the generated dashboards are checked against (tests/grafana/test_schema.py writes one .ts file
// per dashboard that assigns its JSON to these types; `tsc --noEmit` must report 0 errors).
import type {
  AnnotationQuery,
  DataQuery,
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';

/** JSON as Grafana stores it: a string enum member is its string value (`${Enum}`), everything else as typed. */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/**
 * Grafana 11.6's InfluxDB query (public/app/plugins/datasource/influxdb/types.ts, `InfluxQuery`); the
 * datasource plugin's types are not part of @grafana/schema, so the fields the dashboards use are copied.
 */
export interface InfluxQuery extends DataQuery {
  query?: string;
  rawQuery?: boolean;
  resultFormat?: 'time_series' | 'table' | 'logs';
  alias?: string;
  // annotations (inside `target`)
  tagsColumn?: string;
  textColumn?: string;
  timeEndColumn?: string;
  titleColumn?: string;
  fromAnnotations?: boolean;
}

/** A panel whose options and fieldConfig.defaults.custom are checked against its plugin's generated types. */
export type TypedPanel<Options, Custom> = Json<
  Omit<Panel, 'options' | 'fieldConfig' | 'targets'> & {
    options: Options;
    fieldConfig: Omit<FieldConfigSource, 'defaults'> & { defaults: Omit<FieldConfig, 'custom'> & { custom?: Custom } };
    targets: InfluxQuery[];
  }
>;
/** A panel type without generated types in @grafana/schema (alertlist): options stay a free map. */
export type UntypedPanel = Json<Omit<Panel, 'targets'> & { targets?: InfluxQuery[] }>;
export type Row = Json<RowPanel>;
export type Annotation = Json<AnnotationQuery<InfluxQuery>>;
export type Variable = Json<VariableModel>;
export type DashboardModel = Json<Dashboard>;
