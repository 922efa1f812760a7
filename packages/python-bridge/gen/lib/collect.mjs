// The OpenRPC document read into what the emitters need: methods and notifications, typed.
import { pascal, snake } from "./names.mjs";

/** An object schema of a method's or notification's params, as one shape. */
const paramsSchema = (params) => ({ type: "object", additionalProperties: false, required: params.filter((p) => p.required).map((p) => p.name), properties: Object.fromEntries(params.map((p) => [p.name, p.schema])) });

/** Every method with its params and result typed; registers their models in `shapes`. */
export function collectMethods(doc, shapes) {
  return doc.methods.map((m) => {
    const base = pascal(m.name);
    const params = m.params.map((p) => ({
      wire: p.name,
      py: snake(p.name),
      required: p.required,
      schema: p.schema,
      type: shapes.pyType(p.schema, base + "Params" + pascal(p.name), "in"),
      doc: p.schema.description,
    }));
    // A TypedDict of the params as a whole, for callers who build them as data.
    const paramsModel = shapes.model(paramsSchema(m.params), base + "Params", "in");
    const result = m.result.schema;
    const resultType = shapes.pyType(result, base + "Result", "out");
    return {
      name: m.name,
      py: snake(m.name.replace(".", "_")),
      summary: m.summary,
      params,
      paramsModel,
      result,
      resultType,
      errors: (m.errors ?? []).map((e) => (typeof e === "string" ? e : e.message)),
      inStreams: m["x-in-streams"] ?? [],
      outStreams: m["x-out-streams"] ?? [],
    };
  });
}

/** Every notification the daemon sends, with the model of its params. */
export function collectNotifications(doc, shapes) {
  return doc["x-notifications"].map((n) => {
    const base = pascal(n.name) + "Notification";
    return { name: n.name, summary: n.summary, model: shapes.model(paramsSchema(n.params), base, "out") };
  });
}
