// `phi-broker serve-example <service>`: a catalog service that keeps in memory what it receives and publishes, and
// answers right-of-access questions from it (docs/patient-rights.md "Try it by hand").
import type { FhirResource } from 'fhir/r4.js';
import type { PatientMatchDef } from '../catalog/types.js';
import type { FhirResource as JsonResource } from '../fhir/resource.js';
import { errorFields, type Logger } from '../log/log.js';
import { resolvePatient } from '../registry/patient-key.js';
import type { AccessQuestion } from '../sdk/access.js';
import type { PhiClient, PublishResult } from '../sdk/client.js';
import type { Delivered } from '../sdk/delivery.js';
import { parseJsonText } from '../wire/json.js';

export interface ExampleServiceOptions {
  /** A connected client of the catalog service this example plays. */
  readonly client: PhiClient;
  /** The catalog's patient matching rule (the same rule the broker applies). */
  readonly rule: PatientMatchDef;
  /** Whether the service receives deliveries (a catalog subscriber); a pure publisher only publishes and answers. */
  readonly subscribe: boolean;
  readonly logger?: Logger;
  /** Told of each copy kept and each answer given (types and counts only), e.g. to print them. */
  readonly onEvent?: (e: ExampleEvent) => void;
}

export type ExampleEvent =
  | { readonly kind: 'kept'; readonly type: string; readonly publisher: string; readonly profile: string | undefined }
  | { readonly kind: 'answered'; readonly resources: number; readonly types: readonly string[] };

export class ExampleService {
  private readonly held = new Map<string, JsonResource>();
  private stopHandle: (() => Promise<void>) | undefined;
  private delivered = 0;

  private constructor(private readonly opts: ExampleServiceOptions) {}

  static async start(opts: ExampleServiceOptions): Promise<ExampleService> {
    const s = new ExampleService(opts);
    if (opts.subscribe) await opts.client.subscribe('*', (d) => s.keepDelivered(d));
    await s.startAnswering();
    return s;
  }

  /** Answers access questions (again, after stopAnswering: an outage that keeps what it holds). */
  async startAnswering(): Promise<void> {
    if (this.stopHandle !== undefined) return;
    const handle = await this.opts.client.onAccessRequest((ref, q) => this.answer(ref, q));
    this.stopHandle = () => handle.stop();
  }

  /** Stops answering access questions; keeps receiving and holding. */
  async stopAnswering(): Promise<void> {
    const stop = this.stopHandle;
    this.stopHandle = undefined;
    await stop?.();
  }

  /** Publishes a resource as this service and keeps it, when accepted, as one of its own records. */
  async publish(resource: FhirResource): Promise<PublishResult> {
    const result = await this.opts.client.publish(resource);
    if (result.status === 'accepted') this.keep(resource as unknown as JsonResource);
    return result;
  }

  /** What it keeps, newest version of each resource. */
  holdings(): readonly JsonResource[] {
    return [...this.held.values()];
  }

  /** How many deliveries it has kept since it started. */
  get deliveries(): number {
    return this.delivered;
  }

  /** Every resource it keeps about the patient asked (its part of the designated record set). */
  about(question: AccessQuestion): JsonResource[] {
    const names = new Set([question.patientRef, question.patientPseudonym]);
    return this.holdings().filter((r) => {
      const p = resolvePatient(r, this.opts.rule);
      return p.kind === 'patient' && names.has(p.ref);
    });
  }

  async stop(): Promise<void> {
    await this.stopAnswering();
  }

  private keepDelivered(d: Delivered): void {
    // The lexeme-keeping parse, so a decimal goes back exactly as delivered (FHIR R4 datatypes.html#decimal).
    const parsed = parseJsonText(d.resourceJson);
    this.keep(('value' in parsed ? parsed.value : d.resource) as JsonResource);
    this.delivered += 1;
    this.opts.onEvent?.({
      kind: 'kept',
      type: String(d.resource['resourceType']),
      publisher: d.provenance.publisher,
      profile: d.provenance.profile,
    });
  }

  private keep(resource: JsonResource): void {
    const id = resource['id'];
    // The broker gives every delivered copy an id (docs/profiles.md); a resource without one is kept under a counter.
    const key = `${resource.resourceType}/${typeof id === 'string' ? id : `#${this.held.size}`}`;
    this.held.set(key, resource);
  }

  private answer(patientRef: string, question: AccessQuestion): FhirResource[] {
    try {
      const found = this.about({ ...question, patientRef });
      this.opts.onEvent?.({
        kind: 'answered',
        resources: found.length,
        types: [...new Set(found.map((r) => r.resourceType))].sort(),
      });
      return found as unknown as FhirResource[];
    } catch (err) {
      this.opts.logger?.error({ event: 'example.answer.failed', ...errorFields(err) }, 'could not answer');
      throw err;
    }
  }
}
